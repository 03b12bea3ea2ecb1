"""psycopg2 client-compatibility test (see ../README.md). Exit 0 when every check passes.

psycopg2 interpolates parameters on the client and sends plain simple-protocol queries (no server-side
prepare, text format only); SQL-level PREPARE/EXECUTE is checked separately.
"""
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402
import psycopg2.extensions  # noqa: E402
import psycopg2.extras  # noqa: E402

psycopg2.extras.register_uuid()

E = C.env()
NS = E["ns"]
T = f"{NS}.types"
R = C.Runner("psycopg2")

# psycopg2 renders a list as ARRAY[...]; ARRAY[NULL] alone has no element type, hence the casts.
CASTS = {"ai": "::int[]", "ai8": "::bigint[]", "af8": "::float8[]", "ab": "::boolean[]", "at": "::text[]"}


def connect(autocommit=False, **kw):
    args = dict(host=E["host"], port=E["port"], user=E["user"], password=E["password"],
                dbname=E["dbname"], connect_timeout=10)
    args.update(kw)
    conn = psycopg2.connect(**args)
    conn.autocommit = autocommit
    return conn


def run(conn, q, args=None):
    with conn.cursor() as cur:
        cur.execute(q, args)
        return cur.fetchall() if cur.description else cur.rowcount


def sqlstate_of(fn):
    try:
        fn()
    except psycopg2.Error as e:
        return e.pgcode, str(e).strip()
    return None, "no error"


def expect_sqlstate(want, fn):
    got, msg = sqlstate_of(fn)
    C.expect(got == want, f"expected SQLSTATE {want}, got {got}: {msg}")


def params(row):
    out = []
    for c in C.DATA_NAMES:
        v = row[c]
        if v is not None and c in ("j", "jb"):
            v = psycopg2.extras.Json(v)
        out.append(v)
    return out


INSERT = (f"INSERT INTO {T} ({', '.join(C.NAMES)}) VALUES ("
          + ", ".join("%s" + CASTS.get(c, "") for c in C.NAMES) + ")")
SELECT = f"SELECT {', '.join(C.NAMES)} FROM {T} WHERE id IN ({{}}) ORDER BY id"

admin = None


def check_connect():
    global admin
    admin = connect(autocommit=True)
    v = run(admin, "SELECT 1 + 1")[0][0]
    C.expect(v == 2, f"SELECT 1 + 1 gave {v!r}")


def check_wrong_password():
    try:
        connect(password=E["password"] + "-wrong").close()
    except psycopg2.OperationalError as e:
        C.expect("password authentication failed" in str(e), f"unexpected login error: {e}")
        return
    raise C.CheckFailed("login with a wrong password succeeded")


def check_setup():
    run(admin, C.drop_schema_sql(NS))
    run(admin, C.create_schema_sql(NS))
    run(admin, C.create_table_sql(T))


def check_insert_params():
    conn = connect(autocommit=True)
    try:
        for rid, row in C.ROWS.items():
            run(conn, INSERT, [rid] + params(row))
    finally:
        conn.close()


def fetch_and_compare(ids):
    conn = connect(autocommit=True)
    try:
        rows = run(conn, SELECT.format(", ".join(map(str, ids))))
    finally:
        conn.close()
    got_ids = [r[0] for r in rows]
    C.expect(got_ids == sorted(ids), f"expected ids {sorted(ids)}, got {got_ids}")
    bad = []
    for r in rows:
        bad += C.compare_row(r[0], C.ROWS[r[0] % 10], dict(zip(C.NAMES, r)))
    C.expect(not bad, "; ".join(bad))


def check_select():
    fetch_and_compare([1, 2, 3])


def check_per_type():
    bad = []
    conn = connect(autocommit=True)
    try:
        for ci, col in enumerate(C.DATA_NAMES):
            for k, row in enumerate((C.ROW_FULL, C.ROW_EDGE)):
                rid = 4000 + ci * 10 + k
                try:
                    run(conn, f"INSERT INTO {T} (id, {col}) VALUES (%s, %s{CASTS.get(col, '')})",
                        [rid, params(row)[ci]])
                    got = run(conn, f"SELECT {col} FROM {T} WHERE id = {rid}")
                except psycopg2.Error as e:
                    bad.append(f"{col}={row[col]!r}: [{e.pgcode}] {str(e).strip()}")
                    continue
                if not got:
                    bad.append(f"{col}: row {rid} not found after INSERT")
                    continue
                exp = {c: None for c in C.DATA_NAMES}
                exp[col] = row[col]
                g = {c: None for c in C.DATA_NAMES}
                g[col] = got[0][0]
                bad += C.compare_row(rid, exp, g)
    finally:
        conn.close()
    C.expect(not bad, f"{len(bad)} type(s) failed: " + " | ".join(bad))


def check_sql_prepare_execute():
    conn = connect(autocommit=True)
    try:
        run(conn, f"PREPARE ins_p2 (bigint, text) AS INSERT INTO {T} (id, txt) VALUES ($1, $2)")
        run(conn, "EXECUTE ins_p2 (140, 'prepared')")
        rows = run(conn, f"SELECT txt FROM {T} WHERE id = 140")
        C.expect(rows == [("prepared",)], f"after EXECUTE got {rows}")
        run(conn, "DEALLOCATE ins_p2")
    finally:
        conn.close()


def ids_present(ids):
    return [r[0] for r in run(admin, f"SELECT id FROM {T} WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id")]


def check_txn_commit():
    conn = connect()
    try:
        run(conn, f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [100, "tx-a"])
        run(conn, f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [101, "tx-b"])
        n = run(conn, f"SELECT count(*) FROM {T} WHERE id IN (100, 101)")[0][0]
        C.expect(n == 2, f"own uncommitted rows: expected 2 visible inside the transaction, got {n}")
        st = conn.get_transaction_status()
        C.expect(st == psycopg2.extensions.TRANSACTION_STATUS_INTRANS, f"transaction status {st}, expected INTRANS")
        seen = ids_present([100, 101])
        C.expect(seen == [], f"uncommitted rows visible to another session: {seen}")
        conn.commit()
    finally:
        conn.close()
    seen = ids_present([100, 101])
    C.expect(seen == [100, 101], f"after COMMIT expected ids [100, 101], got {seen}")


def seed(ids):
    """Plain rows the transaction/error checks own, so they do not depend on the INSERT checks."""
    for i in ids:
        run(admin, f"INSERT INTO {T} (id, txt) VALUES ({i}, 'seed') ON CONFLICT (id) DO NOTHING")


def check_txn_rollback():
    seed([200, 201])
    conn = connect()
    try:
        run(conn, f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [110, "rb-a"])
        run(conn, f"UPDATE {T} SET txt = 'changed' WHERE id = 200")
        run(conn, f"DELETE FROM {T} WHERE id = 201")
        conn.rollback()
    finally:
        conn.close()
    seen = ids_present([110, 200, 201])
    C.expect(seen == [200, 201], f"after ROLLBACK expected ids [200, 201] (110 absent, 201 not deleted), got {seen}")
    txt = run(admin, f"SELECT txt FROM {T} WHERE id = 200")[0][0]
    C.expect(txt == "seed", f"after ROLLBACK the UPDATE is visible: txt={txt!r}")


def check_txn_error_aborts_block():
    seed([200])
    conn = connect()
    try:
        run(conn, f"INSERT INTO {T} (id, txt) VALUES (%s, %s)", [120, "ab-a"])
        expect_sqlstate("23505", lambda: run(conn, f"INSERT INTO {T} (id) VALUES (200)"))
        st = conn.get_transaction_status()
        C.expect(st == psycopg2.extensions.TRANSACTION_STATUS_INERROR, f"transaction status {st}, expected INERROR")
        expect_sqlstate("25P02", lambda: run(conn, "SELECT 1"))
        conn.rollback()
        C.expect(run(conn, "SELECT 7")[0][0] == 7, "connection not usable after ROLLBACK")
        conn.rollback()
    finally:
        conn.close()
    C.expect(ids_present([120]) == [], "row of an aborted transaction is visible")


def check_error_unique_violation():
    seed([200])
    expect_sqlstate("23505", lambda: run(admin, f"INSERT INTO {T} (id) VALUES (%s)", [200]))


def check_error_undefined_table():
    expect_sqlstate("42P01", lambda: run(admin, f"SELECT * FROM {NS}.no_such_table"))


def check_error_syntax():
    expect_sqlstate("42601", lambda: run(admin, "SELEC 1"))


def check_error_exception_class():
    try:
        seed([200])
        run(admin, f"INSERT INTO {T} (id) VALUES (200)")
    except psycopg2.errors.UniqueViolation:
        return
    raise C.CheckFailed("psycopg2.errors.UniqueViolation not raised")


COPY_COLS = "id, b, i4, num, txt, bin, d, ts, tstz, u, at"
COPY_CSV = (
    '41,t,42,1.500000,"hello, world",\\x00ff,2024-02-29,2024-02-29 13:45:56.123456,'
    '2024-02-29 13:45:56.123456+00,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,"{a,""b c"",NULL}"\n'
    '42,,,,,,,,,,\n'
    '43,f,-1,0.000000,"",\\x,1970-01-01,1999-12-31 23:59:59.999999,2000-01-01 00:00:00.000001+00,'
    '00000000-0000-0000-0000-000000000000,{}\n'
)
COPY_TEXT = (
    "51\tt\t42\t1.500000\thello, world\t\\\\x00ff\t2024-02-29\t2024-02-29 13:45:56.123456\t"
    "2024-02-29 13:45:56.123456+00\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t{a,\"b c\",NULL}\n"
    "52\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n"
    "53\tf\t-1\t0.000000\t\t\\\\x\t1970-01-01\t1999-12-31 23:59:59.999999\t2000-01-01 00:00:00.000001+00\t"
    "00000000-0000-0000-0000-000000000000\t{}\n"
)


def copy_session():
    conn = connect()
    run(conn, "SET TimeZone = 'UTC'")
    conn.commit()
    return conn


def check_copy_expert_in_csv():
    conn = copy_session()
    try:
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY {T} ({COPY_COLS}) FROM STDIN WITH (FORMAT csv)", io.StringIO(COPY_CSV))
            C.expect(cur.rowcount == 3, f"COPY FROM rowcount {cur.rowcount}, expected 3")
        conn.commit()
        rows = run(conn, f"SELECT id, txt, bin, at FROM {T} WHERE id IN (41, 42, 43) ORDER BY id")
    finally:
        conn.close()
    got = [(r[0], r[1], None if r[2] is None else bytes(r[2]), r[3]) for r in rows]
    want = [(41, "hello, world", b"\x00\xff", ["a", "b c", None]), (42, None, None, None), (43, "", b"", [])]
    C.expect(got == want, f"rows after COPY FROM: {got!r}, expected {want!r}")


def check_copy_expert_in_text():
    conn = copy_session()
    try:
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY {T} ({COPY_COLS}) FROM STDIN", io.StringIO(COPY_TEXT))
            C.expect(cur.rowcount == 3, f"COPY FROM rowcount {cur.rowcount}, expected 3")
        conn.commit()
        rows = run(conn, f"SELECT id, txt, bin, at FROM {T} WHERE id IN (51, 52, 53) ORDER BY id")
    finally:
        conn.close()
    got = [(r[0], r[1], None if r[2] is None else bytes(r[2]), r[3]) for r in rows]
    want = [(51, "hello, world", b"\x00\xff", ["a", "b c", None]), (52, None, None, None), (53, "", b"", [])]
    C.expect(got == want, f"rows after COPY FROM: {got!r}, expected {want!r}")


def check_copy_expert_out_csv():
    # Needs the rows 41..43 written by check_copy_expert_in_csv, or writes them with INSERTs.
    if ids_present([41, 42, 43]) != [41, 42, 43]:
        run(admin, f"DELETE FROM {T} WHERE id IN (41, 42, 43)")
        run(admin, f"INSERT INTO {T} ({COPY_COLS}) VALUES "
                   "(41, true, 42, 1.5, 'hello, world', '\\x00ff', '2024-02-29', '2024-02-29 13:45:56.123456', "
                   "'2024-02-29 13:45:56.123456+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a,\"b c\",NULL}'), "
                   "(42, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
                   "(43, false, -1, 0, '', '\\x', '1970-01-01', '1999-12-31 23:59:59.999999', "
                   "'2000-01-01 00:00:00.000001+00', '00000000-0000-0000-0000-000000000000', '{}')")
    conn = copy_session()
    buf = io.StringIO()
    try:
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY (SELECT {COPY_COLS} FROM {T} WHERE id IN (41, 42, 43) ORDER BY id) "
                            f"TO STDOUT WITH (FORMAT csv)", buf)
        conn.commit()
    finally:
        conn.close()
    C.expect(buf.getvalue() == COPY_CSV, f"COPY TO STDOUT csv gave {buf.getvalue()!r}, expected {COPY_CSV!r}")


def main():
    R.run("connect_scram", check_connect)
    R.stop_if_failed("connect_scram")
    R.run("login_wrong_password_refused", check_wrong_password)
    R.run("create_namespace_and_table", check_setup)
    R.stop_if_failed("create_namespace_and_table")
    R.run("insert_params", check_insert_params)
    R.run("select_results", check_select)
    R.run("per_type_params_results", check_per_type)
    R.run("sql_prepare_execute", check_sql_prepare_execute)
    R.run("txn_commit", check_txn_commit)
    R.run("txn_rollback", check_txn_rollback)
    R.run("txn_error_aborts_block_25P02", check_txn_error_aborts_block)
    R.run("error_23505_unique_violation", check_error_unique_violation)
    R.run("error_42P01_undefined_table", check_error_undefined_table)
    R.run("error_42601_syntax", check_error_syntax)
    R.run("error_exception_class", check_error_exception_class)
    R.run("copy_expert_from_stdin_csv", check_copy_expert_in_csv)
    R.run("copy_expert_from_stdin_text", check_copy_expert_in_text)
    R.run("copy_expert_to_stdout_csv", check_copy_expert_out_csv)
    try:
        admin.close()
    except Exception:
        pass
    R.finish()


if __name__ == "__main__":
    main()
