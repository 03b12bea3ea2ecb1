#!/usr/bin/env bash
# psql client-compatibility test. Each NN_*.sql runs with ON_ERROR_STOP=1 and its output is compared with
# expected/NN_*.out (taken from PostgreSQL 15; @NS@ and @USER@ stand for STRATA_NS and PGUSER).
# Then one psql run per expected error, checking the SQLSTATE. Exit 0 when every check passes.
# STRATA_CLIENTS_UPDATE_EXPECTED=1 rewrites the expected files from this run's output (do it on Postgres).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NS="${STRATA_NS:-clients_psql}"
USER_NAME="${PGUSER:-root}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="$USER_NAME" PGDATABASE="${PGDATABASE:-strata}"
export PGCONNECT_TIMEOUT=10 PGSSLMODE=disable PGTZ=UTC
[[ "$NS" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "STRATA_NS must be a lower-case identifier: $NS"; exit 2; }
if [[ "${STRATA_DIALECT:-}" == strata ]]; then CREATE="CREATE NAMESPACE"; else CREATE="CREATE SCHEMA"; fi
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
passed=0
failed=()

ok() { passed=$((passed + 1)); echo "  ok   psql: $1"; }
fail() { failed+=("$1"); echo "  FAIL psql: $1: $2"; }

PSQL=(psql -X -v ON_ERROR_STOP=1 -P pager=off -v ns="$NS" -v create_schema="$CREATE" -v copy_file="$HERE/copy_in.csv")

# connect with a password (SCRAM); PGPASSWORD comes from the environment
if out=$("${PSQL[@]}" -tA -c "SELECT 1 + 1" 2>&1) && [[ "$out" == 2 ]]; then ok connect_scram
else fail connect_scram "$out"; echo "psql: 0 passed, 1 failed"; exit 1; fi

if out=$(PGPASSWORD="${PGPASSWORD:-}-wrong" "${PSQL[@]}" -c "SELECT 1" 2>&1); then
  fail login_wrong_password_refused "login with a wrong password succeeded"
elif grep -q "password authentication failed" <<<"$out"; then ok login_wrong_password_refused
else fail login_wrong_password_refused "$out"; fi

if out=$("${PSQL[@]}" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $NS CASCADE" 2>&1 \
   || "${PSQL[@]}" -q -c "DROP SCHEMA IF EXISTS $NS CASCADE" 2>&1); then ok drop_namespace
else fail drop_namespace "$out"; fi

# Output is compared with runs of blanks and of dashes squeezed, so that table alignment (which
# depends on the length of the namespace name) does not matter.
squeeze() { sed -e "s#$HERE/##g" -e 's/^ *//' -e 's/  */ /g' -e 's/--*/-/g' -e 's/ *$//' "$1"; }
for sql in "$HERE"/0*.sql; do
  name="$(basename "$sql" .sql)"
  exp="$HERE/expected/$name.out"
  sed -e "s#@NS@#$NS#g" -e "s#@COPY_FILE@#$HERE/copy_in.csv#g" "$sql" >"$OUT/$name.sql"
  (cd "$OUT" && "${PSQL[@]}" -f "$name.sql" >"$OUT/$name.raw" 2>&1)
  rc=$?
  if [[ "${STRATA_CLIENTS_UPDATE_EXPECTED:-}" == 1 ]]; then
    sed -e "s/$NS/@NS@/g" -e "s/\b$USER_NAME\b/@USER@/g" "$OUT/$name.raw" >"$exp"
  fi
  sed -e "s/@NS@/$NS/g" -e "s/@USER@/$USER_NAME/g" "$exp" >"$OUT/$name.exp.raw"
  squeeze "$OUT/$name.exp.raw" >"$OUT/$name.expected"
  squeeze "$OUT/$name.raw" >"$OUT/$name.out"
  if [[ $rc == 0 ]] && cmp -s "$OUT/$name.expected" "$OUT/$name.out"; then ok "$name"
  else
    fail "$name" "psql exit $rc; diff expected actual:"
    diff -u "$OUT/$name.expected" "$OUT/$name.out" | sed -n '3,80p' | sed 's/^/      /'
  fi
done

# errors, one psql run each: exit status 3 (script error) and the SQLSTATE
expect_error() {
  local name="$1" want="$2" sql="$3" out rc
  out=$("${PSQL[@]}" -v VERBOSITY=sqlstate -c '\set VERBOSITY sqlstate' -c "$sql" 2>&1); rc=$?
  if [[ $rc == 1 || $rc == 3 ]] && grep -q "ERROR:  $want" <<<"$out"; then ok "$name"
  else fail "$name" "expected ERROR $want, got exit $rc: $(tr '\n' ' ' <<<"$out")"; fi
}
expect_error error_23505_unique_violation 23505 "INSERT INTO $NS.t (id, name) VALUES (1, 'again')"
expect_error error_42P01_undefined_table 42P01 "SELECT * FROM $NS.no_such_table"
expect_error error_42601_syntax 42601 "SELEC 1"
# an error inside a transaction block aborts it: the next statement fails with 25P02
out=$(printf '%s\n' '\set VERBOSITY sqlstate' 'BEGIN;' "INSERT INTO $NS.t (id, name) VALUES (1, 'x');" 'SELECT 1;' 'ROLLBACK;' \
  | psql -X -P pager=off 2>&1)
if grep -q "ERROR:  23505" <<<"$out" && grep -q "ERROR:  25P02" <<<"$out" && grep -q "^ROLLBACK" <<<"$out"; then
  ok txn_error_aborts_block_25P02
else fail txn_error_aborts_block_25P02 "$(tr '\n' ' ' <<<"$out")"; fi

echo "psql: $passed passed, ${#failed[@]} failed (of $((passed + ${#failed[@]})))"
if (( ${#failed[@]} )); then echo "psql: failed checks: ${failed[*]}"; exit 1; fi
exit 0
