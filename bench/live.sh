#!/usr/bin/env bash
# Live queries: change -> subscriber latency (p50/p99) and write throughput with 0, 1, 100 and 1,000
# subscribers, each on its own user, while 8 writers insert (crates/strata-server/examples/live_bench.rs).
# Strata's SUBSCRIBE side by side with PostgreSQL 15's LISTEN/NOTIFY (one channel per subscriber,
# each insert NOTIFYing its channel in the same transaction), and Strata's own LISTEN/NOTIFY.
#
#   bench/live.sh                      # release build, 10 s per run
#   PROFILE=debug SECONDS_PER_RUN=5 bench/live.sh
#   SUBSCRIBERS="0 1 100" bench/live.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-10}
WRITERS=${WRITERS:-8}
SUBSCRIBERS=${SUBSCRIBERS:-"0 1 100 1000"}
PROFILE=${PROFILE:-release}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

./scripts/ensure-deps.sh
. ./scripts/target-dir.sh
flag=(); [ "$PROFILE" = release ] && flag=(--release)
cargo build "${flag[@]}" --bin strata --example live_bench
T="${CARGO_TARGET_DIR:-target}/$PROFILE"
STRATA="$T/strata"
BENCH="$T/examples/live_bench"

. bench/common.sh
ulimit -n 65536 2>/dev/null || true

cat >"$WORK/strata.toml" <<TOML
max_connections = 1200
[limits]
max_pending_logins = 1200
TOML
STRATA_ROOT_PASSWORD=pw "$STRATA" serve --config "$WORK/strata.toml" --listen "127.0.0.1:$SPORT" \
  --data-dir "$WORK/strata" >"$WORK/strata.log" 2>&1 &
SPID=$!
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
echo pw >"$WORK/pgpw" && chmod 644 "$WORK/pgpw"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -U root --auth=scram-sha-256 --pwfile="$WORK/pgpw" >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PPORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=1200 -c synchronous_commit=off" start >/dev/null
for _ in $(seq 100); do grep -q "ready to accept connections" "$WORK/strata.log" && break; sleep 0.1; done

for n in $SUBSCRIBERS; do
  "$BENCH" --port "$SPORT" --password pw --subscribers "$n" --writers "$WRITERS" --seconds "$RUN" --mode subscribe | sed 's/^/strata   /'
  "$BENCH" --port "$SPORT" --password pw --subscribers "$n" --writers "$WRITERS" --seconds "$RUN" --mode notify | sed 's/^/strata   /'
  "$BENCH" --port "$PPORT" --password pw --db postgres --subscribers "$n" --writers "$WRITERS" --seconds "$RUN" --mode notify | sed 's/^/postgres /'
done
echo "($WRITERS writers, ${RUN}s a run, Strata $PROFILE build; latency = subscriber clock at arrival - writer clock before the INSERT)"
