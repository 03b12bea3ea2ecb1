#!/usr/bin/env bash
# The benchmark: Strata (release) against a throw-away PostgreSQL 15 with the same durability, the same
# work and the same clients; DataFusion and DuckDB read Strata's own Parquet files for the cold-scan
# limit. Prints one table (workload, Strata, PostgreSQL, ratio, target); the full mode also writes
# docs/benchmarks.json, docs/benchmarks.svg and the table in docs/benchmarks.md. See bench/README.md.
#
#   bench/run.sh                 # full mode: 10M-row scan, 8 clients, 10 s per pgbench run (~30 min)
#   bench/run.sh --quick         # small sizes, a few seconds each, no targets checked (the test suite runs it)
#   bench/run.sh --durability sync   # fsync per commit on both sides (default: on neither)
#   STRATA=path/to/strata bench/run.sh --quick   # use this binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for a in "$@"; do [ "$a" = --quick ] && quick=1; done
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

./scripts/ensure-deps.sh
if [ -z "${STRATA:-}" ]; then
  . ./scripts/target-dir.sh
  cargo build --release --bin strata
  STRATA="${CARGO_TARGET_DIR:-target}/release/strata"
fi
command -v pgbench >/dev/null || { echo "pgbench not found (PostgreSQL's client tools)" >&2; exit 1; }

# psycopg to drive the timed workloads, DataFusion and DuckDB to read the Parquet files directly.
VENV="${STRATA_BENCH_CACHE:-$HOME/.cache/strata-bench}/venv"
if ! "$VENV/bin/python" -c 'import psycopg, datafusion, duckdb' 2>/dev/null; then
  python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -q python3-venv >/dev/null; }
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r bench/requirements.txt
fi

out=()
[ $quick = 0 ] && [ -z "${OUT:-}" ] && OUT=docs
[ -n "${OUT:-}" ] && out=(--out "$OUT")
"$VENV/bin/python" bench/bench.py --strata "$STRATA" --pgbin "$PGBIN" "${out[@]}" "$@"
if [ -n "${OUT:-}" ] && [ -f "$OUT/benchmarks-table.md" ] && [ -f docs/benchmarks.md ] && [ "$OUT" = docs ]; then
  # The table between the markers in docs/benchmarks.md is the last full run's.
  python3 - <<'PY'
import re
doc = open("docs/benchmarks.md").read()
table = open("docs/benchmarks-table.md").read()
doc = re.sub(r"(<!-- bench:begin -->\n).*?(<!-- bench:end -->)", lambda m: m.group(1) + table + m.group(2), doc, flags=re.S)
open("docs/benchmarks.md", "w").write(doc)
PY
  rm docs/benchmarks-table.md
fi
