#!/usr/bin/env bash
# Runs the client-compatibility tests against the server named by PGHOST/PGPORT/PGUSER/PGPASSWORD/
# PGDATABASE (install first with install.sh). Each client uses its own namespace,
# ${STRATA_NS:-strata_clients}_<client>, which it drops and creates again.
#   tests/clients/run.sh                     # all clients
#   tests/clients/run.sh psycopg3 pgjdbc     # a subset: psycopg3 psycopg2 asyncpg sqlalchemy django node-pg node-postgres pgjdbc psql pg_dump live
# Exits non-zero if any client failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STRATA_CLIENTS_CACHE:-$HOME/.cache/strata-clients}"
PREFIX="${STRATA_NS:-strata_clients}"
ALL=(psycopg3 psycopg2 asyncpg sqlalchemy django node-pg node-postgres pgjdbc psql pg_dump live)
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-root}" PGDATABASE="${PGDATABASE:-strata}"
export PGPASSWORD="${PGPASSWORD:-}"
PY="$CACHE/venv/bin/python"
JAR="${PGJDBC_JAR:-/usr/share/java/postgresql.jar}"

cmd_for() {
  case "$1" in
    psycopg3) echo "$PY $HERE/python/test_psycopg3.py" ;;
    psycopg2) echo "$PY $HERE/python/test_psycopg2.py" ;;
    asyncpg) echo "$PY $HERE/python/test_asyncpg.py" ;;
    sqlalchemy) echo "$PY $HERE/python/test_sqlalchemy.py" ;;
    django) echo "$PY $HERE/python/test_django.py" ;;
    node-pg|pg|node) echo "env NODE_PATH=$CACHE/node/node_modules node $HERE/node/test_pg.js" ;;
    node-postgres|postgres.js) echo "env NODE_PATH=$CACHE/node/node_modules node $HERE/node/test_postgres.js" ;;
    pgjdbc|jdbc|java) echo "java -cp $JAR:$CACHE/java ClientTest" ;;
    psql) echo "bash $HERE/psql/test.sh" ;;
    pg_dump) echo "bash $HERE/pg_dump/test.sh" ;;
    live) echo "$PY $HERE/python/test_live.py" ;;
    *) return 1 ;;
  esac
}

clients=("$@")
(( ${#clients[@]} )) || clients=("${ALL[@]}")
for c in "${clients[@]}"; do
  cmd_for "$c" >/dev/null || { echo "unknown client '$c' (known: ${ALL[*]})"; exit 2; }
done
[[ -x "$PY" && -d "$CACHE/node/node_modules/pg" && -d "$CACHE/node/node_modules/postgres" && -f "$CACHE/java/ClientTest.class" ]] \
  || { echo "missing tools in $CACHE: run tests/clients/install.sh first"; exit 2; }

results=()
status=0
for c in "${clients[@]}"; do
  ns="${PREFIX}_${c//-/_}"
  echo "=== $c (namespace $ns)"
  start=$SECONDS
  # shellcheck disable=SC2046
  if STRATA_NS="$ns" timeout "${STRATA_CLIENTS_TIMEOUT:-300}" $(cmd_for "$c"); then
    results+=("PASS $c ($((SECONDS - start))s)")
  else
    results+=("FAIL $c ($((SECONDS - start))s)")
    status=1
  fi
done
echo "=== summary"
printf '%s\n' "${results[@]}"
npass=$(printf '%s\n' "${results[@]}" | grep -c '^PASS')
echo "clients: $npass passed, $(( ${#results[@]} - npass )) failed"
exit $status
