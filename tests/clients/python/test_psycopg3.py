"""psycopg 3 client-compatibility test (see ../README.md). Exit 0 when every check passes."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import psycopg  # noqa: E402
from psycopg import errors, sql  # noqa: E402
from psycopg.types.json import Json, Jsonb  # noqa: E402

E = C.env()
NS = E["ns"]
T = f"{NS}.types"
R = C.Runner("psycopg3")


def connect(autocommit=False, **kw):
    args = dict(host=E["host"], port=E["port"], user=E["user"], password=E["password"],
                dbname=E["dbname"], connect_timeout=10, autocommit=autocommit)
    args.update(kw)
    return psycopg.connect(**args)


def sqlstate_of(fn):
    try:
        fn()
    except psycopg.Error as e:
        return e.sqlstate, str(e).strip()
    return None, "no error"


def expect_sqlstate(want, fn):
    got, msg = sqlstate_of(fn)
    C.expect(got == want, f"expected SQLSTATE {want}, got {got}: {msg}")


def params(row):
    out = []
    for c in C.DATA_NAMES:
        v = row[c]
        if v is not None and c == "j":
            v = Json(v)
        elif v is not None and c == "jb":
            v = Jsonb(v)
        out.append(v)
    return out


INSERT_S = f"INSERT INTO {T} ({', '.join(C.NAMES)}) VALUES ({', '.join(['%s'] * len(C.NAMES))})"
INSERT_B = f"INSERT INTO {T} ({', '.join(C.NAMES)}) VALUES ({', '.join(['%b'] * len(C.NAMES))})"
# ids are inlined (not a parameter) so that the round-trip checks do not depend on `= ANY($1)`.
SELECT = f"SELECT {', '.join(C.NAMES)} FROM {T} WHERE id IN ({{}}) ORDER BY id"

admin = None  # autocommit connection


def check_connect():
    global admin
    admin = connect(autocommit=True)
    v = admin.execute("SELECT 1 + 1").fetchone()[0]
    C.expect(v == 2, f"SELECT 1 + 1 gave {v!r}")


def check_wrong_password():
    try:
        connect(password=E["password"] + "-wrong").close()
    except psycopg.OperationalError as e:
        # libpq reports the server's message; the SQLSTATE is not exposed on a failed connect.
        C.expect("password authentication failed" in str(e) or "28P01" in str(e),
                 f"unexpected login error: {e}")
        return
    raise C.CheckFailed("login with a wrong password succeeded")


def check_setup():
    admin.execute(C.drop_schema_sql(NS))
    admin.execute(C.create_schema_sql(NS))
    admin.execute(C.create_table_sql(T))


def check_insert_text_params():
    with connect(autocommit=True) as conn:
        for rid, row in C.ROWS.items():
            conn.execute(INSERT_S, [rid] + params(row), prepare=True)


def check_insert_binary_params():
    with connect(autocommit=True) as conn:
        for rid, row in C.ROWS.items():
            conn.execute(INSERT_B, [rid + 10] + params(row), prepare=True)


def fetch_and_compare(ids, binary, prepare=True):
    with connect(autocommit=True) as conn:
        cur = conn.cursor(binary=binary)
        q = SELECT.format(", ".join(str(i) for i in ids))
        rows = cur.execute(q, prepare=prepare).fetchall()
    got_ids = [r[0] for r in rows]
    C.expect(got_ids == sorted(ids), f"expected ids {sorted(ids)}, got {got_ids}")
    bad = []
    for r in rows:
        bad += C.compare_row(r[0], C.ROWS[r[0] % 10], dict(zip(C.NAMES, r)))
    C.expect(not bad, "; ".join(bad))


def check_select_text():
    fetch_and_compare([1, 2, 3, 11, 12, 13], binary=False)


def check_select_binary():
    fetch_and_compare([1, 2, 3, 11, 12, 13], binary=True)


def ids_present(ids):
    q = f"SELECT id FROM {T} WHERE id IN ({', '.join(str(i) for i in ids)}) ORDER BY id"
    rows = admin.execute(q).fetchall()
    return [r[0] for r in rows]


def check_param_any_array():
    with connect(autocommit=True) as conn:
        rows = conn.execute(f"SELECT id FROM {T} WHERE id = ANY(%s) ORDER BY id", [[1, 3]]).fetchall()
        C.expect(rows == [(1,), (3,)], f"WHERE id = ANY(%s) with [1, 3] gave {rows}")


def per_type(placeholder, binary_results):
    """Each type on its own: INSERT (id, col) with one parameter, read back, compare.

    Reports every column that fails, so one bad type does not hide the others."""
    bad = []
    base = 5000 if placeholder == "%b" else 4000
    with connect(autocommit=True) as conn:
        for ci, col in enumerate(C.DATA_NAMES):
            for k, row in enumerate((C.ROW_FULL, C.ROW_EDGE)):
                rid = base + ci * 10 + k
                val = params(row)[ci]
                try:
                    conn.execute(f"INSERT INTO {T} (id, {col}) VALUES ({placeholder}, {placeholder})",
                                 [rid, val])
                    got = conn.cursor(binary=binary_results).execute(
                        f"SELECT {col} FROM {T} WHERE id = {rid}").fetchone()
                except psycopg.Error as e:
                    bad.append(f"{col}={row[col]!r}: [{e.sqlstate}] {str(e).strip()}")
                    continue
                if got is None:
                    bad.append(f"{col}: row {rid} not found after INSERT")
                    continue
                exp = {c: None for c in C.DATA_NAMES}
                exp[col] = row[col]
                g = {c: None for c in C.DATA_NAMES}
                g[col] = got[0]
                bad += C.compare_row(rid, exp, g)
    C.expect(not bad, f"{len(bad)} type(s) failed: " + " | ".join(bad))


def check_per_type_text():
    per_type("%s", binary_results=False)


def check_per_type_binary():
    per_type("%b", binary_results=True)


def check_txn_commit():
    # psycopg opens the transaction itself (BEGIN before the first statement); autocommit is off.
    with connect() as conn:
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [100, "tx-a"])
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [101, "tx-b"])
        n = conn.execute(f"SELECT count(*) FROM {T} WHERE id IN (100, 101)").fetchone()[0]
        C.expect(n == 2, f"own uncommitted rows: expected 2 visible inside the transaction, got {n}")
        C.expect(conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS,
                 f"transaction status {conn.info.transaction_status!r}, expected INTRANS")
        seen = ids_present([100, 101])
        C.expect(seen == [], f"uncommitted rows visible to another session: {seen}")
        conn.commit()
    seen = ids_present([100, 101])
    C.expect(seen == [100, 101], f"after COMMIT expected ids [100, 101], got {seen}")


def seed(ids):
    """Plain rows the transaction/error checks own, so they do not depend on the INSERT checks."""
    for i in ids:
        admin.execute(f"INSERT INTO {T} (id, txt) VALUES ({i}, 'seed') ON CONFLICT (id) DO NOTHING")


def check_txn_rollback():
    seed([200, 201])
    with connect() as conn:
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [110, "rb-a"])
        conn.execute(f"UPDATE {T} SET txt = 'changed' WHERE id = 200")
        conn.execute(f"DELETE FROM {T} WHERE id = 201")
        conn.rollback()
    seen = ids_present([110, 200, 201])
    C.expect(seen == [200, 201], f"after ROLLBACK expected ids [200, 201] (110 absent, 201 not deleted), got {seen}")
    txt = admin.execute(f"SELECT txt FROM {T} WHERE id = 200").fetchone()[0]
    C.expect(txt == "seed", f"after ROLLBACK the UPDATE is visible: txt={txt!r}")


def check_txn_error_aborts_block():
    seed([200])
    with connect() as conn:
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [120, "ab-a"])
        expect_sqlstate("23505", lambda: conn.execute(f"INSERT INTO {T} (id) VALUES (200)"))
        C.expect(conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR,
                 f"transaction status {conn.info.transaction_status!r}, expected INERROR")
        expect_sqlstate("25P02", lambda: conn.execute("SELECT 1"))
        conn.rollback()
        v = conn.execute("SELECT 7").fetchone()[0]
        C.expect(v == 7, "connection not usable after ROLLBACK")
        conn.rollback()
    C.expect(ids_present([120]) == [], "row of an aborted transaction is visible")


def check_nested_transactions():
    # psycopg's nested conn.transaction() blocks are savepoints (SQLAlchemy's
    # begin_nested and Django's nested atomic() are the same statements).
    seed([300])
    with connect() as conn:
        with conn.transaction():
            conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [310, "outer"])
            try:
                with conn.transaction():
                    conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [311, "inner"])
                    conn.execute(f"UPDATE {T} SET txt = 'inner' WHERE id = 300")
                    conn.execute(f"INSERT INTO {T} (id) VALUES (300)")  # 23505 aborts the inner block only
            except psycopg.errors.UniqueViolation:
                pass
            C.expect(conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS,
                     f"after ROLLBACK TO SAVEPOINT the status is {conn.info.transaction_status!r}, expected INTRANS")
            with conn.transaction():
                conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [312, "kept"])
            n = conn.execute(f"SELECT count(*) FROM {T} WHERE id IN (310, 311, 312)").fetchone()[0]
            C.expect(n == 2, f"inside the outer block expected 2 of 310..312, got {n}")
    seen = ids_present([310, 311, 312])
    C.expect(seen == [310, 312], f"after the outer COMMIT expected ids [310, 312], got {seen}")
    txt = admin.execute(f"SELECT txt FROM {T} WHERE id = 300").fetchone()[0]
    C.expect(txt == "seed", f"the rolled-back savepoint's UPDATE landed: txt={txt!r}")


def check_savepoint_statements():
    with connect(autocommit=True) as conn:
        expect_sqlstate("25P01", lambda: conn.execute("SAVEPOINT s"))
        expect_sqlstate("25P01", lambda: conn.execute("RELEASE SAVEPOINT s"))
        expect_sqlstate("25P01", lambda: conn.execute("ROLLBACK TO SAVEPOINT s"))
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (320, 'a')")
        conn.execute("SAVEPOINT s1")
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (321, 'b')")
        conn.execute("SAVEPOINT s2")
        conn.execute(f"DELETE FROM {T} WHERE id = 320")
        conn.execute("ROLLBACK TO SAVEPOINT s1")
        n = conn.execute(f"SELECT count(*) FROM {T} WHERE id IN (320, 321)").fetchone()[0]
        C.expect(n == 1, f"after ROLLBACK TO s1 expected only 320, got {n} rows")
        expect_sqlstate("3B001", lambda: conn.execute("RELEASE SAVEPOINT s2"))  # gone with the rollback
        C.expect(conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR,
                 f"an unknown savepoint aborts the block, status {conn.info.transaction_status!r}")
        expect_sqlstate("25P02", lambda: conn.execute("SELECT 1"))
        conn.execute("ROLLBACK TO s1")  # still there: ROLLBACK TO keeps it
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (322, 'c')")
        conn.execute("RELEASE s1")
        expect_sqlstate("3B001", lambda: conn.execute("ROLLBACK TO s1"))
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (323, 'd')")
        conn.execute('SAVEPOINT "Mixed Case"')
        conn.execute(f"INSERT INTO {T} (id, txt) VALUES (324, 'e')")
        conn.execute('ROLLBACK TO SAVEPOINT "Mixed Case"')
        conn.execute("COMMIT")
    seen = ids_present([320, 321, 322, 323, 324])
    C.expect(seen == [323], f"expected only 323 committed, got {seen}")


def check_server_side_cursor():
    # A named cursor is DECLARE … CURSOR, then FETCH FORWARD n through the
    # extended protocol (binary results here), after a Describe of the cursor.
    with connect() as conn:
        with conn.cursor(name="strata_named", binary=True) as cur:
            cur.itersize = 7
            cur.execute("SELECT x, x * 2 AS y FROM generate_series(1, 50) AS g(x) WHERE x > %s", [10])
            C.expect([d.name for d in cur.description] == ["x", "y"], f"description {cur.description}")
            first = cur.fetchmany(5)
            C.expect([r[0] for r in first] == [11, 12, 13, 14, 15], f"fetchmany(5) gave {first}")
            rest = list(cur)
            C.expect(len(rest) == 35 and rest[-1] == (50, 100), f"iterating the rest gave {len(rest)} rows")
        conn.rollback()
    with connect() as conn:
        with conn.cursor(name="strata_held", withhold=True) as cur:
            cur.execute("SELECT x FROM generate_series(1, 20) AS g(x)")
            conn.commit()  # a WITH HOLD cursor outlives its transaction
            got = [r[0] for r in cur.fetchall()]
            C.expect(got == list(range(1, 21)), f"WITH HOLD after COMMIT gave {got}")


def check_error_unique_violation():
    seed([200])
    expect_sqlstate("23505", lambda: admin.execute(f"INSERT INTO {T} (id) VALUES (%s)", [200]))


def check_error_undefined_table():
    expect_sqlstate("42P01", lambda: admin.execute(f"SELECT * FROM {NS}.no_such_table"))


def check_error_syntax():
    expect_sqlstate("42601", lambda: admin.execute("SELEC 1"))


def check_error_exception_class():
    try:
        seed([200])
        admin.execute(f"INSERT INTO {T} (id) VALUES (200)")
    except errors.UniqueViolation:
        return
    raise C.CheckFailed("psycopg.errors.UniqueViolation not raised")


def check_upsert_returning():
    with connect(autocommit=True) as conn:
        r = conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
                         f"SET txt = EXCLUDED.txt RETURNING id, txt", [130, "first"]).fetchall()
        C.expect(r == [(130, "first")], f"insert RETURNING gave {r}")
        r = conn.execute(f"INSERT INTO {T} (id, txt) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
                         f"SET txt = EXCLUDED.txt RETURNING id, txt", [130, "second"]).fetchall()
        C.expect(r == [(130, "second")], f"upsert RETURNING gave {r}")
        cur = conn.execute(f"INSERT INTO {T} (id, txt) VALUES (130, 'x') ON CONFLICT (id) DO NOTHING")
        C.expect(cur.rowcount == 0, f"DO NOTHING rowcount {cur.rowcount}")
        cur = conn.execute(f"DELETE FROM {T} WHERE id = 130")
        C.expect(cur.rowcount == 1, f"DELETE rowcount {cur.rowcount}")


def check_session_settings():
    with connect(autocommit=True) as conn:
        conn.execute("SET application_name = 'strata-psycopg3'")
        v = conn.execute("SHOW application_name").fetchone()[0]
        C.expect(v == "strata-psycopg3", f"SHOW application_name gave {v!r}")
        conn.execute("RESET application_name")
        v = conn.execute("SHOW application_name").fetchone()[0]
        C.expect(v == "", f"after RESET application_name is {v!r}")


COPY_COLS = C.NAMES
COPY_TYPES = ["int8", "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text",
              "varchar", "bytea", "date", "time", "timestamp", "timestamptz", "uuid", "json", "jsonb",
              "int4[]", "int8[]", "float8[]", "bool[]", "text[]"]


def copy_values(row):
    return params(row)


def check_copy_in_text():
    with connect() as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {T} ({', '.join(COPY_COLS)}) FROM STDIN") as cp:
                for rid, row in C.ROWS.items():
                    cp.write_row([rid + 20] + copy_values(row))
        conn.commit()
    fetch_and_compare([21, 22, 23], binary=False)


def check_copy_in_binary():
    with connect() as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {T} ({', '.join(COPY_COLS)}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(COPY_TYPES)
                for rid, row in C.ROWS.items():
                    cp.write_row([rid + 30] + copy_values(row))
        conn.commit()
    fetch_and_compare([31, 32, 33], binary=True)


def copy_out(fmt_clause):
    # Reads rows 1..3 (inserted with text parameters) back through COPY ... TO STDOUT.
    got = []
    with connect(autocommit=True) as conn:
        with conn.cursor() as cur:
            q = f"COPY (SELECT {', '.join(COPY_COLS)} FROM {T} WHERE id IN (1, 2, 3) ORDER BY id) TO STDOUT{fmt_clause}"
            with cur.copy(q) as cp:
                cp.set_types(COPY_TYPES)
                for row in cp.rows():
                    got.append(row)
    C.expect([r[0] for r in got] == [1, 2, 3], f"COPY TO returned ids {[r[0] for r in got]}")
    bad = []
    for r in got:
        bad += C.compare_row(r[0], C.ROWS[r[0]], dict(zip(COPY_COLS, r)))
    C.expect(not bad, "; ".join(bad))


def check_copy_out_text():
    copy_out("")


def check_copy_out_binary():
    copy_out(" (FORMAT BINARY)")


def check_copy_table_out_raw():
    # COPY table TO STDOUT (a whole table, text format), compared byte for byte with Postgres' output.
    with connect(autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {NS}.small (id INT PRIMARY KEY, t TEXT, n NUMERIC(6,2), ok BOOLEAN)")
        conn.execute(f"INSERT INTO {NS}.small VALUES (1, 'a\tb', 1.50, true), (2, NULL, -3, false), "
                     f"(3, 'back\\slash', 0, NULL)")
        data = b""
        with conn.cursor() as cur:
            with cur.copy(f"COPY {NS}.small TO STDOUT") as cp:
                for chunk in cp:
                    data += bytes(chunk)
        rows = sorted(data.decode().splitlines())
        want = ["1\ta\\tb\t1.50\tt", "2\t\\N\t-3.00\tf", "3\tback\\\\slash\t0.00\t\\N"]
        C.expect(rows == want, f"COPY TO STDOUT text gave {rows!r}, expected {want!r}")
        data = b""
        with conn.cursor() as cur:
            with cur.copy(f"COPY (SELECT id, t FROM {NS}.small ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
                for chunk in cp:
                    data += bytes(chunk)
        want = 'id,t\n1,a\tb\n2,\n3,back\\slash\n'
        C.expect(data.decode() == want, f"COPY TO STDOUT csv gave {data.decode()!r}, expected {want!r}")


def main():
    R.run("connect_scram", check_connect)
    R.stop_if_failed("connect_scram")
    R.run("login_wrong_password_refused", check_wrong_password)
    R.run("create_namespace_and_table", check_setup)
    R.stop_if_failed("create_namespace_and_table")
    R.run("insert_text_params", check_insert_text_params)
    R.run("insert_binary_params", check_insert_binary_params)
    R.run("select_text_results", check_select_text)
    R.run("select_binary_results", check_select_binary)
    R.run("per_type_text_params_text_results", check_per_type_text)
    R.run("per_type_binary_params_binary_results", check_per_type_binary)
    R.run("param_any_array", check_param_any_array)
    R.run("txn_commit", check_txn_commit)
    R.run("txn_rollback", check_txn_rollback)
    R.run("txn_error_aborts_block_25P02", check_txn_error_aborts_block)
    R.run("nested_transactions_savepoints", check_nested_transactions)
    R.run("savepoint_statements", check_savepoint_statements)
    R.run("server_side_cursor", check_server_side_cursor)
    R.run("error_23505_unique_violation", check_error_unique_violation)
    R.run("error_42P01_undefined_table", check_error_undefined_table)
    R.run("error_42601_syntax", check_error_syntax)
    R.run("error_exception_class", check_error_exception_class)
    R.run("upsert_returning", check_upsert_returning)
    R.run("session_set_show_reset", check_session_settings)
    R.run("copy_from_stdin_text", check_copy_in_text)
    R.run("copy_from_stdin_binary", check_copy_in_binary)
    R.run("copy_to_stdout_text", check_copy_out_text)
    R.run("copy_to_stdout_binary", check_copy_out_binary)
    R.run("copy_to_stdout_raw_text_csv", check_copy_table_out_raw)
    try:
        admin.close()
    except Exception:
        pass
    R.finish()


if __name__ == "__main__":
    main()
