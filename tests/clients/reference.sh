#!/usr/bin/env bash
# Runs the whole client suite against a throwaway PostgreSQL started from the installed server binaries
# (PostgreSQL 15 here), so that an expectation PostgreSQL does not meet shows as a failure of the check,
# not of Strata. Skips (exit 0, with a message) where there are no server binaries or no postgres user.
#   tests/clients/reference.sh [client ...]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BINDIR="${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
if [[ -z "$BINDIR" || ! -x "$BINDIR/initdb" ]]; then
  echo "reference: no PostgreSQL server binaries found: skipped"; exit 0
fi
as=()
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 && command -v runuser >/dev/null || { echo "reference: no postgres user: skipped"; exit 0; }
  as=(runuser -u postgres --)
fi
TMP="$(mktemp -d)"
chmod 755 "$TMP"
[[ ${#as[@]} == 0 ]] || chown postgres "$TMP"
PW=reference-pw
echo "$PW" >"$TMP/pw" && chmod 644 "$TMP/pw"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$BINDIR/initdb" -D "$TMP/data" -U root -A scram-sha-256 --pwfile="$TMP/pw" >"$TMP/initdb.log" 2>&1 \
  || { cat "$TMP/initdb.log"; exit 1; }
"${as[@]}" "$BINDIR/pg_ctl" -D "$TMP/data" -w -l "$TMP/pg.log" \
  -o "-p $port -k $TMP -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || { cat "$TMP/pg.log"; exit 1; }
trap '"${as[@]}" "$BINDIR/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1; rm -rf "$TMP"' EXIT
echo "reference: PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on port $port"
PGHOST=127.0.0.1 PGPORT=$port PGUSER=root PGPASSWORD=$PW PGDATABASE=postgres STRATA_NS=reference \
  bash "$HERE/run.sh" "$@"
