#!/usr/bin/env bash
# Strata against PostgreSQL 15 on the same work, with pgbench as the client for both.
# Prints transactions per second for each workload and the Strata/PostgreSQL ratio.
#
#   bench/run.sh                  # release build, 10 s per workload, 4 clients
#   DURATION=30 CLIENTS=8 bench/run.sh
#   PROFILE=debug bench/run.sh    # quick check of the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
ROWS=${ROWS:-10000}
COPY_ROWS=${COPY_ROWS:-200000}
PROFILE=${PROFILE:-release}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

./scripts/ensure-deps.sh
. ./scripts/target-dir.sh
if [ "$PROFILE" = release ]; then
  cargo build --release --bin strata
else
  cargo build --bin strata
fi
STRATA="${CARGO_TARGET_DIR:-target}/$PROFILE/strata"

. bench/common.sh

"$STRATA" serve --listen "127.0.0.1:$SPORT" --data-dir "$WORK/strata" >"$WORK/strata.log" 2>&1 &
SPID=$!
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PPORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=off" start >/dev/null
for _ in $(seq 100); do grep -q "ready to accept connections" "$WORK/strata.log" && break; sleep 0.1; done

# Same durability on both sides: Strata's default writes the WAL without fsync per
# commit (sync_writes = false), so PostgreSQL runs with synchronous_commit = off.
setup="CREATE TABLE bench.kv (id BIGINT PRIMARY KEY, v TEXT, n BIGINT);
INSERT INTO bench.kv SELECT i, 'value-' || i, i FROM generate_series(1, $ROWS) AS s(i);"
psql -qX -h 127.0.0.1 -p "$SPORT" -U root -d strata -c "CREATE NAMESPACE bench" -c "$setup" >/dev/null
psql -qX -h 127.0.0.1 -p "$PPORT" -U postgres -d postgres -c "CREATE SCHEMA bench" -c "$setup" >/dev/null

tps() { # host port user db script
  pgbench -n -M prepared -T "$DURATION" -c "$CLIENTS" -j 2 -h 127.0.0.1 -p "$2" -U "$3" -f "bench/$5" "$4" 2>&1 |
    awk '/^tps/ {print $3}'
}

printf '%-14s %14s %14s %8s\n' workload strata_tps postgres_tps ratio
for w in point_select range_scan insert; do
  s=$(tps 127.0.0.1 "$SPORT" root strata "$w.sql")
  p=$(tps 127.0.0.1 "$PPORT" postgres postgres "$w.sql")
  printf '%-14s %14.0f %14.0f %8.2f\n' "$w" "${s:-0}" "${p:-0}" "$(python3 -c "print(${s:-0}/max(${p:-0},1e-9))")"
done
echo "($CLIENTS clients, ${DURATION}s each, $ROWS preloaded rows, Strata $PROFILE build, pgbench -M prepared)"

# Bulk load and export: the same text file through psql's \copy (COPY FROM STDIN / TO STDOUT).
python3 -c "
import sys
w = sys.stdout.write
for i in range(1, $COPY_ROWS + 1):
    w(f'{i}\tbody of row {i} with some words in it\t{i * 7}\n')
" >"$WORK/load.tsv"
copy_rate() { # port user db direction
  local sql
  if [ "$4" = in ]; then sql="\\copy bench.load FROM '$WORK/load.tsv'"; else sql="\\copy bench.load TO '$WORK/out.tsv'"; fi
  python3 - "$1" "$2" "$3" "$sql" "$COPY_ROWS" <<'PY'
import subprocess, sys, time
port, user, db, sql, rows = sys.argv[1:]
t = time.monotonic()
subprocess.run(["psql", "-qX", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", db, "-c", sql],
               check=True, stdout=subprocess.DEVNULL)
print(int(rows) / (time.monotonic() - t))
PY
}
load="CREATE TABLE bench.load (id BIGINT PRIMARY KEY, body TEXT, n BIGINT)"
psql -qX -h 127.0.0.1 -p "$SPORT" -U root -d strata -c "$load" >/dev/null
psql -qX -h 127.0.0.1 -p "$PPORT" -U postgres -d postgres -c "$load" >/dev/null
printf '%-14s %14s %14s %8s\n' copy strata_rows/s postgres_rows/s ratio
for d in in out; do
  s=$(copy_rate "$SPORT" root strata "$d")
  p=$(copy_rate "$PPORT" postgres postgres "$d")
  printf '%-14s %14.0f %14.0f %8.2f\n' "copy_$d" "$s" "$p" "$(python3 -c "print($s/max($p,1e-9))")"
done
echo "($COPY_ROWS rows of (BIGINT key, ~40-byte TEXT, BIGINT) through psql \\copy, one COPY each way)"
