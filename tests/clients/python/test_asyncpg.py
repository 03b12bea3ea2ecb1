"""asyncpg client-compatibility test (see ../README.md). Exit 0 when every check passes.

asyncpg always uses the extended protocol with named prepared statements, binary parameters and binary
results; COPY goes through copy_records_to_table (binary COPY FROM STDIN), copy_to_table,
copy_from_query and copy_from_table.
"""
import asyncio
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import asyncpg  # noqa: E402

E = C.env()
NS = E["ns"]
T = f"{NS}.types"
R = C.Runner("asyncpg")


async def connect(**kw):
    args = dict(host=E["host"], port=E["port"], user=E["user"], password=E["password"],
                database=E["dbname"], timeout=10, ssl=False)
    args.update(kw)
    return await asyncpg.connect(**args)


def params(row):
    out = []
    for c in C.DATA_NAMES:
        v = row[c]
        if v is not None and c in ("j", "jb"):
            v = json.dumps(v)  # asyncpg's json/jsonb codecs take str
        out.append(v)
    return out


async def sqlstate_of(coro):
    try:
        await coro
    except asyncpg.PostgresError as e:
        return e.sqlstate, str(e).strip()
    return None, "no error"


async def expect_sqlstate(want, coro):
    got, msg = await sqlstate_of(coro)
    C.expect(got == want, f"expected SQLSTATE {want}, got {got}: {msg}")


INSERT = f"INSERT INTO {T} ({', '.join(C.NAMES)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(C.NAMES)))})"
SELECT = f"SELECT {', '.join(C.NAMES)} FROM {T} WHERE id IN ({{}}) ORDER BY id"

admin = None


async def ids_present(ids):
    rows = await admin.fetch(f"SELECT id FROM {T} WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id")
    return [r[0] for r in rows]


async def check_connect():
    global admin
    admin = await connect()
    v = await admin.fetchval("SELECT 1 + 1")
    C.expect(v == 2, f"SELECT 1 + 1 gave {v!r}")


async def check_wrong_password():
    try:
        c = await connect(password=E["password"] + "-wrong")
        await c.close()
    except asyncpg.InvalidPasswordError as e:
        C.expect(e.sqlstate == "28P01", f"SQLSTATE {e.sqlstate}")
        return
    except asyncpg.PostgresError as e:
        raise C.CheckFailed(f"expected 28P01 InvalidPasswordError, got {type(e).__name__} [{e.sqlstate}] {e}")
    raise C.CheckFailed("login with a wrong password succeeded")


async def check_setup():
    await admin.execute(C.drop_schema_sql(NS))
    await admin.execute(C.create_schema_sql(NS))
    await admin.execute(C.create_table_sql(T))


async def check_insert_params():
    conn = await connect()
    try:
        stmt = await conn.prepare(INSERT)
        for rid, row in C.ROWS.items():
            await stmt.fetch(rid, *params(row))
        await conn.executemany(INSERT, [[rid + 10] + params(row) for rid, row in C.ROWS.items()])
    finally:
        await conn.close()


async def check_param_description():
    conn = await connect()
    try:
        stmt = await conn.prepare(INSERT)
        types = [t.name for t in stmt.get_parameters()]
        want = ["int8", "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar",
                "bytea", "date", "time", "timestamp", "timestamptz", "uuid", "json", "jsonb", "int4[]",
                "int8[]", "float8[]", "bool[]", "text[]"]
        C.expect(types == want, f"ParameterDescription types {types}, expected {want}")
    finally:
        await conn.close()


async def fetch_and_compare(ids):
    conn = await connect()
    try:
        rows = await conn.fetch(SELECT.format(", ".join(map(str, ids))))
    finally:
        await conn.close()
    got_ids = [r[0] for r in rows]
    C.expect(got_ids == sorted(ids), f"expected ids {sorted(ids)}, got {got_ids}")
    bad = []
    for r in rows:
        bad += C.compare_row(r[0], C.ROWS[r[0] % 10], dict(zip(C.NAMES, r)))
    C.expect(not bad, "; ".join(bad))


async def check_select():
    await fetch_and_compare([1, 2, 3, 11, 12, 13])


async def check_select_by_pk_param():
    conn = await connect()
    try:
        r = await conn.fetchrow(f"SELECT {', '.join(C.NAMES)} FROM {T} WHERE id = $1", 1)
        C.expect(r is not None, "no row for id = $1 (1)")
        bad = C.compare_row(1, C.ROW_FULL, dict(zip(C.NAMES, r)))
        C.expect(not bad, "; ".join(bad))
        rows = await conn.fetch(f"SELECT id FROM {T} WHERE id = ANY($1::bigint[]) ORDER BY id", [1, 3])
        C.expect([x[0] for x in rows] == [1, 3], f"id = ANY($1::bigint[]) gave {[x[0] for x in rows]}")
    finally:
        await conn.close()


async def check_per_type():
    bad = []
    conn = await connect()
    try:
        for ci, col in enumerate(C.DATA_NAMES):
            for k, row in enumerate((C.ROW_FULL, C.ROW_EDGE)):
                rid = 5000 + ci * 10 + k
                try:
                    await conn.execute(f"INSERT INTO {T} (id, {col}) VALUES ($1, $2)", rid, params(row)[ci])
                    got = await conn.fetchrow(f"SELECT {col} FROM {T} WHERE id = {rid}")
                except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, TypeError) as e:
                    bad.append(f"{col}={row[col]!r}: [{getattr(e, 'sqlstate', type(e).__name__)}] {str(e).strip()}")
                    continue
                if got is None:
                    bad.append(f"{col}: row {rid} not found after INSERT")
                    continue
                exp = {c: None for c in C.DATA_NAMES}
                exp[col] = row[col]
                g = {c: None for c in C.DATA_NAMES}
                g[col] = got[0]
                bad += C.compare_row(rid, exp, g)
    finally:
        await conn.close()
    C.expect(not bad, f"{len(bad)} type(s) failed: " + " | ".join(bad))


async def check_txn_commit():
    conn = await connect()
    try:
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {T} (id, txt) VALUES ($1, $2)", 100, "tx-a")
            await conn.execute(f"INSERT INTO {T} (id, txt) VALUES ($1, $2)", 101, "tx-b")
            n = await conn.fetchval(f"SELECT count(*) FROM {T} WHERE id IN (100, 101)")
            C.expect(n == 2, f"own uncommitted rows: expected 2 visible inside the transaction, got {n}")
            C.expect(conn.is_in_transaction(), "is_in_transaction() is False inside the block")
            seen = await ids_present([100, 101])
            C.expect(seen == [], f"uncommitted rows visible to another session: {seen}")
    finally:
        await conn.close()
    seen = await ids_present([100, 101])
    C.expect(seen == [100, 101], f"after COMMIT expected ids [100, 101], got {seen}")


async def seed(ids):
    """Plain rows the transaction/error checks own, so they do not depend on the INSERT checks."""
    for i in ids:
        await admin.execute(f"INSERT INTO {T} (id, txt) VALUES ({i}, 'seed') ON CONFLICT (id) DO NOTHING")


async def check_txn_rollback():
    await seed([200, 201])
    conn = await connect()
    try:
        tr = conn.transaction()
        await tr.start()
        await conn.execute(f"INSERT INTO {T} (id, txt) VALUES ($1, $2)", 110, "rb-a")
        await conn.execute(f"UPDATE {T} SET txt = 'changed' WHERE id = $1", 200)
        await conn.execute(f"DELETE FROM {T} WHERE id = $1", 201)
        await tr.rollback()
    finally:
        await conn.close()
    seen = await ids_present([110, 200, 201])
    C.expect(seen == [200, 201], f"after ROLLBACK expected ids [200, 201] (110 absent, 201 not deleted), got {seen}")
    txt = await admin.fetchval(f"SELECT txt FROM {T} WHERE id = 200")
    C.expect(txt == "seed", f"after ROLLBACK the UPDATE is visible: txt={txt!r}")


async def check_txn_error_aborts_block():
    await seed([200])
    conn = await connect()
    try:
        tr = conn.transaction()
        await tr.start()
        await conn.execute(f"INSERT INTO {T} (id, txt) VALUES ($1, $2)", 120, "ab-a")
        await expect_sqlstate("23505", conn.execute(f"INSERT INTO {T} (id) VALUES ($1)", 200))
        await expect_sqlstate("25P02", conn.fetchval("SELECT 1"))
        await tr.rollback()
        C.expect(await conn.fetchval("SELECT 7") == 7, "connection not usable after ROLLBACK")
    finally:
        await conn.close()
    C.expect(await ids_present([120]) == [], "row of an aborted transaction is visible")


async def check_error_unique_violation():
    await seed([200])
    await expect_sqlstate("23505", admin.execute(f"INSERT INTO {T} (id) VALUES ($1)", 200))


async def check_error_undefined_table():
    await expect_sqlstate("42P01", admin.fetch(f"SELECT * FROM {NS}.no_such_table"))


async def check_error_syntax():
    await expect_sqlstate("42601", admin.fetch("SELEC 1"))


async def check_error_exception_class():
    try:
        await seed([200])
        await admin.execute(f"INSERT INTO {T} (id) VALUES ($1)", 200)
    except asyncpg.UniqueViolationError:
        return
    raise C.CheckFailed("asyncpg.UniqueViolationError not raised")


async def check_copy_records_to_table():
    conn = await connect()
    try:
        records = [[rid + 20] + params(row) for rid, row in C.ROWS.items()]
        res = await conn.copy_records_to_table("types", records=records, columns=C.NAMES, schema_name=NS)
        C.expect(res == "COPY 3", f"copy_records_to_table returned {res!r}, expected 'COPY 3'")
    finally:
        await conn.close()
    await fetch_and_compare([21, 22, 23])


async def check_copy_to_table_csv():
    data = ("61,t,hello\n62,,\n63,f,\"quoted, \"\"text\"\"\"\n").encode()
    conn = await connect()
    try:
        res = await conn.copy_to_table("types", source=io.BytesIO(data), columns=["id", "b", "txt"],
                                       schema_name=NS, format="csv")
        C.expect(res == "COPY 3", f"copy_to_table returned {res!r}, expected 'COPY 3'")
    finally:
        await conn.close()
    rows = await admin.fetch(f"SELECT id, b, txt FROM {T} WHERE id IN (61, 62, 63) ORDER BY id")
    got = [tuple(r) for r in rows]
    want = [(61, True, "hello"), (62, None, None), (63, False, 'quoted, "text"')]
    C.expect(got == want, f"rows after copy_to_table: {got}, expected {want}")


async def check_copy_from_query():
    conn = await connect()
    try:
        await conn.execute("SET TimeZone = 'UTC'")
        buf = io.BytesIO()
        res = await conn.copy_from_query(
            f"SELECT id, b, i4, num, txt, bin, d, tstz, u, ai FROM {T} WHERE id IN (1, 2, 3) ORDER BY id",
            output=buf, format="csv")
        C.expect(res == "COPY 3", f"copy_from_query returned {res!r}, expected 'COPY 3'")
    finally:
        await conn.close()
    want = ("1,t,-123456789,12345678901234.123456,héllo wörld ✓,\\x0001deadbeefff,2024-02-29,"
            "2024-02-29 13:45:56.123456+00,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,\"{1,2,NULL}\"\n"
            "2,,,,,,,,,\n"
            "3,f,2147483647,-0.000001,\"\",\\x,1970-01-01,2000-01-01 00:00:00.000001+00,"
            "00000000-0000-0000-0000-000000000000,{}\n")
    got = buf.getvalue().decode()
    C.expect(got == want, f"copy_from_query csv gave {got!r}, expected {want!r}")


async def check_copy_from_table():
    conn = await connect()
    try:
        await conn.execute(f"CREATE TABLE {NS}.small (id INT PRIMARY KEY, t TEXT, ok BOOLEAN)")
        await conn.execute(f"INSERT INTO {NS}.small VALUES (1, 'a\tb', true), (2, NULL, false)")
        buf = io.BytesIO()
        res = await conn.copy_from_table("small", columns=["id", "t", "ok"], schema_name=NS, output=buf)
        C.expect(res == "COPY 2", f"copy_from_table returned {res!r}, expected 'COPY 2'")
    finally:
        await conn.close()
    got = sorted(buf.getvalue().decode().splitlines())
    want = ["1\ta\\tb\tt", "2\t\\N\tf"]
    C.expect(got == want, f"copy_from_table text gave {got!r}, expected {want!r}")


async def main():
    await R.arun("connect_scram", check_connect)
    R.stop_if_failed("connect_scram")
    await R.arun("login_wrong_password_refused_28P01", check_wrong_password)
    await R.arun("create_namespace_and_table", check_setup)
    R.stop_if_failed("create_namespace_and_table")
    await R.arun("param_description_types", check_param_description)
    await R.arun("insert_binary_params_prepared", check_insert_params)
    await R.arun("select_binary_results", check_select)
    await R.arun("select_by_pk_param_and_any", check_select_by_pk_param)
    await R.arun("per_type_binary_params_results", check_per_type)
    await R.arun("txn_commit", check_txn_commit)
    await R.arun("txn_rollback", check_txn_rollback)
    await R.arun("txn_error_aborts_block_25P02", check_txn_error_aborts_block)
    await R.arun("error_23505_unique_violation", check_error_unique_violation)
    await R.arun("error_42P01_undefined_table", check_error_undefined_table)
    await R.arun("error_42601_syntax", check_error_syntax)
    await R.arun("error_exception_class", check_error_exception_class)
    await R.arun("copy_records_to_table_binary", check_copy_records_to_table)
    await R.arun("copy_to_table_csv", check_copy_to_table_csv)
    await R.arun("copy_from_query_csv", check_copy_from_query)
    await R.arun("copy_from_table_text", check_copy_from_table)
    try:
        await admin.close()
    except Exception:
        pass
    R.finish()


if __name__ == "__main__":
    asyncio.run(main())
