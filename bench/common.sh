# Sourced by the bench scripts: a work directory with a free port for each server, removed (after
# stopping both servers) on exit. Sets WORK, SPORT, PPORT; the script sets SPID and PGBIN.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
chmod 1777 "$WORK"  # the postgres user writes its socket and log here
SPORT=$(free_port)
PPORT=$(free_port)
cleanup() {
  # Wait for the server to exit, or it may still be writing while its dir is removed.
  [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
