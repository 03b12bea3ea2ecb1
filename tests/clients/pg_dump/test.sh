#!/usr/bin/env bash
# pg_dump client-compatibility test (issue 14): `pg_dump` against the server (schema and data) prints a
# script that loads back into the server and into PostgreSQL.
#
#   PGHOST=.. PGPORT=.. PGUSER=root PGPASSWORD=.. PGDATABASE=strata STRATA_DIALECT=strata tests/clients/pg_dump/test.sh
#
# 1. creates namespace $STRATA_NS (default clients_pg_dump) with a few tables of varied types, defaults and
#    primary keys, and rows with NULLs, NaN/Infinity, quotes, backslashes, tabs, newlines, unicode, bytea;
# 2. runs pg_dump -n $STRATA_NS (plain, --schema-only, --data-only, -t, --inserts, -Fc + pg_restore -l) and
#    of the whole database (-N system), and checks that each exits 0;
# 3. loads the plain dump into a scratch database of a reference PostgreSQL (PG_REF_HOST, PG_REF_PORT,
#    PG_REF_USER, PG_REF_PASSWORD, PG_REF_DB = the database to connect to for CREATE DATABASE, default
#    postgres) and compares contents, column types, defaults and primary keys with the source; without
#    PG_REF_PORT it starts a throwaway PostgreSQL from PG_BINDIR's initdb/pg_ctl, and skips (with a message,
#    not a failure) only when there is none;
# 4. drops the namespace, loads the same dump back into the server under test and compares again.
#
# Binaries: PG_BINDIR (default /usr/lib/postgresql/15/bin when it exists, else PATH); pg_dump must be 15+.
# Prints ok/FAIL per check and `pg_dump: N passed, N failed`; exits non-zero when a check failed.
# Passes against PostgreSQL 15:
#   PGHOST=127.0.0.1 PGPORT=55432 PGUSER=root PGPASSWORD=pw PGDATABASE=postgres \
#   PG_REF_HOST=127.0.0.1 PG_REF_PORT=55432 PG_REF_USER=root PG_REF_PASSWORD=pw tests/clients/pg_dump/test.sh
set -uo pipefail
NS="${STRATA_NS:-clients_pg_dump}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-root}" PGDATABASE="${PGDATABASE:-strata}"
export PGCONNECT_TIMEOUT=10 PGSSLMODE=disable PGTZ=UTC PGCLIENTENCODING=UTF8
[[ "$NS" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "STRATA_NS must be a lower-case identifier: $NS"; exit 2; }
if [[ "${STRATA_DIALECT:-}" == strata ]]; then CREATE="CREATE NAMESPACE"; else CREATE="CREATE SCHEMA"; fi
if [[ -z "${PG_BINDIR:-}" && -x /usr/lib/postgresql/15/bin/pg_dump ]]; then PG_BINDIR=/usr/lib/postgresql/15/bin; fi
bin() { if [[ -n "${PG_BINDIR:-}" ]]; then echo "$PG_BINDIR/$1"; else echo "$1"; fi; }
PG_DUMP="$(bin pg_dump)" PG_RESTORE="$(bin pg_restore)" PSQL_BIN="$(bin psql)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
passed=0
skipped=0
failed=()

ok() { passed=$((passed + 1)); echo "  ok   pg_dump: $1"; }
fail() { failed+=("$1"); echo "  FAIL pg_dump: $1: $2"; }
skip() { skipped=$((skipped + 1)); echo "  skip pg_dump: $1: $2"; }
oneline() { tr '\n' ' ' <"$1" | cut -c1-600; }

PSQL=("$PSQL_BIN" -X -q -v ON_ERROR_STOP=1 -P pager=off)
# the same, against the reference PostgreSQL's scratch database
REF_DB="${NS}_restore"
ref_psql() {
  PGHOST="${PG_REF_HOST:-127.0.0.1}" PGPORT="$PG_REF_PORT" PGUSER="${PG_REF_USER:-$PGUSER}" \
    PGPASSWORD="${PG_REF_PASSWORD:-${PGPASSWORD:-}}" "${PSQL[@]}" "$@"
}

"$PG_DUMP" --version | grep -Eq ' (1[5-9]|[2-9][0-9])\.' || { echo "pg_dump 15 or newer needed: $("$PG_DUMP" --version)"; exit 2; }

if out=$("${PSQL[@]}" -tA -c "SELECT 1 + 1" 2>&1) && [[ "$out" == 2 ]]; then ok connect
else fail connect "$out"; echo "pg_dump: 0 passed, 1 failed"; exit 1; fi

# --- 1. source namespace -------------------------------------------------------------------------------
drop_ns() { "${PSQL[@]}" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $NS CASCADE" 2>&1 \
  || "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS $NS CASCADE" 2>&1; }
cat >"$OUT/ddl.sql" <<EOF
$CREATE $NS;
CREATE TABLE $NS.items (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    qty INT DEFAULT 0,
    active BOOLEAN,
    price DOUBLE PRECISION,
    amount NUMERIC(20,6),
    created TIMESTAMP,
    data BYTEA
);
CREATE TABLE $NS.kv (k TEXT PRIMARY KEY, v TEXT DEFAULT 'x');
CREATE TABLE $NS.typed (
    id INT NOT NULL,
    s SMALLINT,
    r REAL,
    v VARCHAR(20),
    u UUID,
    j JSONB,
    d DATE,
    tz TIMESTAMPTZ,
    tm TIME,
    ia INT[],
    ta TEXT[],
    PRIMARY KEY (id)
);
CREATE TABLE $NS.empty_one (id BIGINT PRIMARY KEY, note TEXT);
EOF
cat >"$OUT/rows.sql" <<EOF
INSERT INTO $NS.items (id, name, qty, active, price, amount, created, data) VALUES
    (1, 'plain', 5, true, 1.5, 12.345678, '2024-01-02 03:04:05', '\\xdeadbeef'),
    (2, 'it''s "quoted"', NULL, false, 'NaN', NULL, NULL, NULL),
    (3, E'multi\\nline\\ttab\\\\back', -7, NULL, '-Infinity', -0.000001, '1999-12-31 23:59:59.123456', '\\x'),
    (4, 'ünïcødé ✓ 日本', 0, true, 1e300, 99999999999999.999999, '2024-02-29 00:00:00', '\\x00ff'),
    (5, '', 2147483647, false, 'Infinity', 0, '0001-01-01 00:00:00', NULL);
INSERT INTO $NS.kv (k, v) VALUES ('a', 'b'), ('', ''), ('tab	in key', NULL), ('\\N', 'backslash N');
INSERT INTO $NS.typed (id, s, r, v, u, j, d, tz, tm, ia, ta) VALUES
    (1, 32767, 1.25, 'vc', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '2024-02-29',
     '2024-01-02 03:04:05+02', '13:14:15.5', '{1,NULL,3}', '{"a b","c,d",NULL,""}'),
    (2, NULL, 'NaN', '', NULL, 'null', NULL, NULL, NULL, '{}', '{}'),
    (3, -32768, -0.5, 'x''y', '00000000-0000-0000-0000-000000000000', '[]', '1970-01-01',
     '1970-01-01 00:00:00+00', '00:00:00', NULL, '{"\\\\back","quo\\"te"}');
EOF
if out=$(drop_ns) && out=$("${PSQL[@]}" -f "$OUT/ddl.sql" -f "$OUT/rows.sql" 2>&1); then ok setup
else fail setup "$out"; echo "pg_dump: $passed passed, ${#failed[@]} failed"; exit 1; fi

TABLES=(items kv typed empty_one)
# contents (psql unaligned, rows in primary-key order), column types, defaults and keys of the namespace
snapshot() {  # snapshot RUNNER... > file ; RUNNER is "${PSQL[@]}" or ref_psql
  local t order
  for t in "${TABLES[@]}"; do
    echo "== $t"
    # kv's keys have distinct lengths: order by length so that collations (C, en_US) agree
    if [[ $t == kv ]]; then order="length(k), k"; else order=1; fi
    "$@" -A -F '|' -c "SELECT * FROM $NS.$t ORDER BY $order" 2>&1
  done
  echo "== columns"
  "$@" -A -F '|' -c "SELECT c.relname, a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '$NS' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2" 2>&1
}
# behaviour that the schema part of the dump must carry: defaults and primary keys (run on a restored copy)
behaviour() {  # behaviour RUNNER... > file
  "$@" -A -F '|' -c "INSERT INTO $NS.items (id, name) VALUES (100, 'defaults')" \
    -c "INSERT INTO $NS.kv (k) VALUES ('dflt')" \
    -c "SELECT id, name, qty FROM $NS.items WHERE id = 100" -c "SELECT k, v FROM $NS.kv WHERE k = 'dflt'" 2>&1
  for stmt in "INSERT INTO $NS.items (id, name) VALUES (1, 'dup')" "INSERT INTO $NS.kv (k, v) VALUES ('a', 'dup')" \
              "INSERT INTO $NS.typed (id) VALUES (2)" "INSERT INTO $NS.empty_one (id) VALUES (1), (1)"; do
    if "$@" -c '\set VERBOSITY sqlstate' -c "$stmt" >/dev/null 2>"$OUT/dup.err"; then echo "accepted: $stmt"
    elif grep -q 23505 "$OUT/dup.err"; then echo "23505: $stmt"
    else echo "other error: $stmt: $(oneline "$OUT/dup.err")"; fi
  done
}
snapshot "${PSQL[@]}" >"$OUT/source.snap"
if grep -q 'ERROR' "$OUT/source.snap"; then fail source_snapshot "$(grep ERROR "$OUT/source.snap" | head -3 | tr '\n' ' ')"
else ok source_snapshot; fi
# what the behaviour checks must print on a faithful copy (taken from the source's schema definition)
cat >"$OUT/behaviour.expected" <<EOF
id|name|qty
100|defaults|0
(1 row)
k|v
dflt|x
(1 row)
23505: INSERT INTO $NS.items (id, name) VALUES (1, 'dup')
23505: INSERT INTO $NS.kv (k, v) VALUES ('a', 'dup')
23505: INSERT INTO $NS.typed (id) VALUES (2)
23505: INSERT INTO $NS.empty_one (id) VALUES (1), (1)
EOF

# --- 2. pg_dump runs -----------------------------------------------------------------------------------
run_dump() {  # run_dump NAME OUTFILE ARGS... : exit 0 and no error on stderr
  local name="$1" file="$2"; shift 2
  local rc
  "$PG_DUMP" "$@" -f "$file" 2>"$OUT/$name.err"; rc=$?
  if [[ $rc == 0 && ! -s "$OUT/$name.err" ]]; then return 0; fi
  rm -f "$file"  # a partial dump is not loaded
  fail "$name" "pg_dump $* exited $rc: $(oneline "$OUT/$name.err")"; return 1
}
have_all() {  # have_all FILE PATTERN-PREFIX : one line per table matching "PREFIX $NS.<table> "
  local t missing=()
  for t in "${TABLES[@]}"; do grep -Eq "^$2 $NS\\.$t[ (]" "$1" || missing+=("$t"); done
  [[ ${#missing[@]} == 0 ]] || { echo "no '$2' for: ${missing[*]}"; return 1; }
}

DUMP="$OUT/dump.sql"
if run_dump dump_plain "$DUMP" -n "$NS"; then
  if out=$(have_all "$DUMP" "CREATE TABLE") && out=$(have_all "$DUMP" "COPY"); then ok dump_plain
  else fail dump_plain "$out"; fi
fi
if run_dump dump_schema_only "$OUT/schema.sql" --schema-only -n "$NS"; then
  if out=$(have_all "$OUT/schema.sql" "CREATE TABLE") && ! grep -q "^COPY " "$OUT/schema.sql"; then ok dump_schema_only
  else fail dump_schema_only "${out:-has COPY}"; fi
fi
if run_dump dump_data_only "$OUT/data.sql" --data-only -n "$NS"; then
  if out=$(have_all "$OUT/data.sql" "COPY") && ! grep -q "^CREATE TABLE" "$OUT/data.sql"; then ok dump_data_only
  else fail dump_data_only "${out:-has CREATE TABLE}"; fi
fi
if run_dump dump_one_table "$OUT/one.sql" -t "$NS.items"; then
  if grep -q "^CREATE TABLE $NS.items " "$OUT/one.sql" && grep -q "^COPY $NS.items " "$OUT/one.sql" \
     && ! grep -q "^COPY $NS.kv " "$OUT/one.sql"; then ok dump_one_table
  else fail dump_one_table "expected exactly $NS.items: $(grep -E '^(CREATE TABLE|COPY) ' "$OUT/one.sql" | tr '\n' ' ')"; fi
fi
if run_dump dump_inserts "$OUT/inserts.sql" --inserts -n "$NS"; then
  n=$(grep -c "^INSERT INTO $NS\\." "$OUT/inserts.sql")
  rows=0
  for t in "${TABLES[@]}"; do rows=$((rows + $("${PSQL[@]}" -tA -c "SELECT count(*) FROM $NS.$t"))); done
  if [[ "$n" == "$rows" ]]; then ok dump_inserts; else fail dump_inserts "$n INSERT statements for $rows rows"; fi
fi
# The whole database (every namespace; `system`, the system tables, left out as docs/clients.md says).
if run_dump dump_whole_database "$OUT/whole.sql" -N system; then
  if out=$(have_all "$OUT/whole.sql" "CREATE TABLE"); then ok dump_whole_database
  else fail dump_whole_database "$out"; fi
fi
if run_dump dump_custom "$OUT/dump.custom" -Fc -n "$NS"; then
  if "$PG_RESTORE" -l "$OUT/dump.custom" >"$OUT/custom.list" 2>"$OUT/restore_l.err"; then
    missing=()
    for t in "${TABLES[@]}"; do
      grep -Eq " TABLE $NS $t " "$OUT/custom.list" || missing+=("TABLE $t")
      grep -Eq " TABLE DATA $NS $t " "$OUT/custom.list" || missing+=("TABLE DATA $t")
    done
    if [[ ${#missing[@]} == 0 ]]; then ok dump_custom_restore_list; else fail dump_custom_restore_list "missing: ${missing[*]}"; fi
  else fail dump_custom_restore_list "pg_restore -l: $(oneline "$OUT/restore_l.err")"; fi
fi

compare() {  # compare NAME EXPECTED ACTUAL
  if cmp -s "$2" "$3"; then ok "$1"
  else fail "$1" "diff source restored:"; diff -u "$2" "$3" | sed -n '3,40p' | sed 's/^/      /'; fi
}

# --- 3. load into PostgreSQL ---------------------------------------------------------------------------
# Without a reference server given, start a throwaway PostgreSQL from the installed binaries (initdb
# refuses root: run it as the postgres user then).
throwaway_pg() {
  local initdb pg_ctl port as=()
  initdb="$(bin initdb)" pg_ctl="$(bin pg_ctl)"
  [[ -x "$initdb" || -n "$(command -v "$initdb")" ]] || return 1
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 && command -v runuser >/dev/null || return 1
    as=(runuser -u postgres --)
  fi
  PG_TMP="$(mktemp -d)"
  chmod 755 "$PG_TMP"
  [[ ${#as[@]} == 0 ]] || chown postgres "$PG_TMP"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
  "${as[@]}" "$initdb" -D "$PG_TMP/data" -U root -A trust >"$PG_TMP/initdb.log" 2>&1 || return 1
  "${as[@]}" "$pg_ctl" -D "$PG_TMP/data" -w -l "$PG_TMP/pg.log" \
    -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null 2>&1 || return 1
  PG_STOP=("${as[@]}" "$pg_ctl" -D "$PG_TMP/data" -m immediate stop)
  export PG_REF_HOST=127.0.0.1 PG_REF_PORT=$port PG_REF_USER=root PG_REF_PASSWORD=
}
if [[ -z "${PG_REF_PORT:-}" ]] && throwaway_pg; then
  trap '"${PG_STOP[@]}" >/dev/null 2>&1; rm -rf "$OUT" "$PG_TMP"' EXIT
fi
if [[ ! -s "$DUMP" ]]; then
  fail restore_into_postgresql "no dump to load"
elif [[ -z "${PG_REF_PORT:-}" ]]; then
  skip restore_into_postgresql "no reference PostgreSQL (set PG_REF_HOST/PG_REF_PORT/PG_REF_USER/PG_REF_PASSWORD)"
else
  admin_db="${PG_REF_DB:-postgres}"
  if out=$(ref_psql -d "$admin_db" -c "DROP DATABASE IF EXISTS $REF_DB" -c "CREATE DATABASE $REF_DB" 2>&1); then
    if ref_psql -d "$REF_DB" -f "$DUMP" >"$OUT/ref_load.out" 2>&1; then
      ok restore_into_postgresql
      snapshot ref_psql -d "$REF_DB" >"$OUT/ref.snap"
      compare restore_into_postgresql_contents "$OUT/source.snap" "$OUT/ref.snap"
      behaviour ref_psql -d "$REF_DB" >"$OUT/ref.behaviour"
      compare restore_into_postgresql_defaults_keys "$OUT/behaviour.expected" "$OUT/ref.behaviour"
    else
      fail restore_into_postgresql "psql -f dump: $(grep -m3 -E 'ERROR|error' "$OUT/ref_load.out" | tr '\n' ' ')"
    fi
    ref_psql -d "$admin_db" -c "DROP DATABASE IF EXISTS $REF_DB" >/dev/null 2>&1
  else fail restore_into_postgresql "scratch database $REF_DB: $out"; fi
fi

# --- 4. load back into the server under test -----------------------------------------------------------
if [[ ! -s "$DUMP" ]]; then
  fail restore_into_source "no dump to load"
elif out=$(drop_ns); then
  if "${PSQL[@]}" -f "$DUMP" >"$OUT/self_load.out" 2>&1; then
    ok restore_into_source
    snapshot "${PSQL[@]}" >"$OUT/self.snap"
    compare restore_into_source_contents "$OUT/source.snap" "$OUT/self.snap"
    behaviour "${PSQL[@]}" >"$OUT/self.behaviour"
    compare restore_into_source_defaults_keys "$OUT/behaviour.expected" "$OUT/self.behaviour"
  else
    fail restore_into_source "psql -f dump: $(grep -m3 -E 'ERROR|error' "$OUT/self_load.out" | tr '\n' ' ')"
  fi
else fail restore_into_source "drop namespace: $out"; fi

# --- 5. the data-only dump loads into tables created with the server's own DDL --------------------------
if [[ -s "$OUT/data.sql" ]] && out=$(drop_ns) && out=$("${PSQL[@]}" -f "$OUT/ddl.sql" 2>&1); then
  if "${PSQL[@]}" -f "$OUT/data.sql" >"$OUT/data_load.out" 2>&1; then
    snapshot "${PSQL[@]}" >"$OUT/data.snap"
    compare restore_data_only_into_source "$OUT/source.snap" "$OUT/data.snap"
  else fail restore_data_only_into_source "psql -f: $(grep -m3 -E 'ERROR|error' "$OUT/data_load.out" | tr '\n' ' ')"; fi
else fail restore_data_only_into_source "${out:-no data-only dump}"; fi

echo "pg_dump: $passed passed, ${#failed[@]} failed, $skipped skipped (of $((passed + ${#failed[@]} + skipped)))"
if (( ${#failed[@]} )); then echo "pg_dump: failed checks: ${failed[*]}"; exit 1; fi
exit 0
