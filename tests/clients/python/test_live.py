"""Notifications and live queries through real drivers (see ../README.md). Exit 0 when every check passes.

Runs against Strata and against PostgreSQL: LISTEN/NOTIFY checks (psycopg 3 `notifies()`, asyncpg
`add_listener`) run on both; the live-query checks (`COPY (SUBSCRIBE ...) TO STDOUT` through psycopg 3
`cursor.copy()` and psql `\\copy`, table channels through asyncpg) only where `system.live_queries`
exists, i.e. on Strata.
"""
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import asyncpg  # noqa: E402
import psycopg  # noqa: E402

E = C.env()
NS = E["ns"]
R = C.Runner("live")


def conninfo():
    return (f"host={E['host']} port={E['port']} user={E['user']} password={E['password']} "
            f"dbname={E['dbname']} connect_timeout=10")


def pconnect():
    return psycopg.connect(conninfo(), autocommit=True)


async def aconnect():
    return await asyncpg.connect(host=E["host"], port=E["port"], user=E["user"], password=E["password"],
                                 database=E["dbname"], timeout=10, ssl=False)


def is_strata():
    with pconnect() as c:
        try:
            c.execute("SELECT count(*) FROM system.live_queries")
            return True
        except psycopg.Error:
            return False


def check_setup():
    with pconnect() as c:
        c.execute(C.drop_schema_sql(NS))
        c.execute(C.create_schema_sql(NS))
        c.execute(f"CREATE TABLE {NS}.msgs (id BIGINT PRIMARY KEY, body TEXT)")


def check_psycopg_notifies():
    with pconnect() as listener, pconnect() as sender:
        listener.execute("LISTEN strata_live_jobs")
        sender_pid = sender.execute("SELECT pg_backend_pid()").fetchone()[0]
        sender.execute("NOTIFY strata_live_jobs, 'hello'")
        sender.execute("SELECT pg_notify('strata_live_jobs', 'from pg_notify')")
        with sender.transaction():
            sender.execute("NOTIFY strata_live_jobs, 'at commit'")
        try:
            with sender.transaction():
                sender.execute("NOTIFY strata_live_jobs, 'rolled back'")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        got = [(n.channel, n.payload, n.pid) for n in listener.notifies(timeout=5, stop_after=3)]
        want = [("strata_live_jobs", p, sender_pid) for p in ("hello", "from pg_notify", "at commit")]
        C.expect(got == want, f"notifies() gave {got!r}, expected {want!r}")
        extra = list(listener.notifies(timeout=0.5))
        C.expect(extra == [], f"a rolled-back NOTIFY was delivered: {extra!r}")


async def check_asyncpg_add_listener():
    listener = await aconnect()
    sender = await aconnect()
    try:
        got = asyncio.Queue()
        await listener.add_listener("strata_live_events", lambda *args: got.put_nowait(args[1:]))
        await sender.execute("NOTIFY strata_live_events, 'one'")
        await sender.execute("SELECT pg_notify('strata_live_events', 'two')")
        pid = await sender.fetchval("SELECT pg_backend_pid()")
        first = await asyncio.wait_for(got.get(), 5)
        second = await asyncio.wait_for(got.get(), 5)
        C.expect(first == (pid, "strata_live_events", "one"), f"first notification {first!r}")
        C.expect(second == (pid, "strata_live_events", "two"), f"second notification {second!r}")
    finally:
        await listener.close()
        await sender.close()


def check_psycopg_copy_subscribe():
    """cursor.copy() over a subscription: the snapshot, then a change made by another connection."""
    with pconnect() as w:
        w.execute(f"INSERT INTO {NS}.msgs VALUES (1, 'first')")
    sub = pconnect()
    try:
        with sub.cursor() as cur:
            sql = f"COPY (SUBSCRIBE TO {NS}.msgs OPTIONS (last_rows = 10)) TO STDOUT"
            with cur.copy(sql) as copy:
                rows = copy.rows()
                snap = next(rows)
                C.expect(snap[0] == "snapshot" and snap[2:] == ("1", "first"), f"snapshot row {snap!r}")

                def write():
                    time.sleep(0.2)
                    with pconnect() as w:
                        w.execute(f"INSERT INTO {NS}.msgs VALUES (2, 'second')")
                threading.Thread(target=write).start()
                change = next(rows)
                C.expect(change[0] == "insert" and change[2:] == ("2", "second"), f"change row {change!r}")
                C.expect(int(change[1]) > int(snap[1]), f"_seq does not grow: {snap!r} then {change!r}")
                # End it from the server side; the COPY completes normally.
                with pconnect() as admin:
                    live = admin.execute("SELECT live_id FROM system.live_queries").fetchall()
                    C.expect(len(live) == 1, f"system.live_queries lists {live!r}")
                    admin.execute(f"KILL LIVE QUERY '{live[0][0]}'")
                rest = list(rows)
                C.expect(rest == [], f"rows after KILL: {rest!r}")
        # The connection is usable afterwards.
        C.expect(sub.execute("SELECT 1").fetchone()[0] == 1, "connection unusable after the COPY")
    finally:
        sub.close()


def check_psycopg_cancel_subscribe():
    """conn.cancel() ends a subscription with 57014 (QueryCanceled) and the connection goes on."""
    sub = pconnect()
    try:
        threading.Timer(0.5, sub.cancel).start()
        try:
            with sub.cursor() as cur:
                with cur.copy(f"COPY (SUBSCRIBE TO {NS}.msgs) TO STDOUT") as copy:
                    for _ in copy:
                        pass
            raise C.CheckFailed("the subscription ended without an error")
        except psycopg.errors.QueryCanceled:
            pass
        C.expect(sub.execute("SELECT 1").fetchone()[0] == 1, "connection unusable after cancel")
    finally:
        sub.close()


def check_psql_copy_subscribe():
    """psql \\copy (SUBSCRIBE ...) to stdout prints the rows as they come until KILL LIVE QUERY."""
    env = dict(os.environ, PGHOST=E["host"], PGPORT=str(E["port"]), PGUSER=E["user"],
               PGPASSWORD=E["password"], PGDATABASE=E["dbname"])
    cmd = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
           f"\\copy (SUBSCRIBE TO SELECT body FROM {NS}.msgs OPTIONS (last_rows = 1)) to stdout"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # psql's output is block-buffered into a pipe: watch the server's side, then read it all.
        with pconnect() as w:
            def live():
                return w.execute("SELECT live_id, changes_sent FROM system.live_queries").fetchall()
            deadline = time.monotonic() + 20
            while not live():
                C.expect(time.monotonic() < deadline and p.poll() is None, "psql's subscription never opened")
                time.sleep(0.05)
            w.execute(f"UPDATE {NS}.msgs SET body = 'edited' WHERE id = 2")
            while live()[0][1] < 1:
                C.expect(time.monotonic() < deadline, "the change was never sent")
                time.sleep(0.05)
            w.execute(f"KILL LIVE QUERY '{live()[0][0]}'")
        out, err = p.communicate(timeout=10)
        C.expect(p.returncode == 0, f"psql exited {p.returncode}: {err}")
        lines = out.splitlines()
        C.expect(len(lines) == 2, f"psql printed {out!r}")
        C.expect(lines[0].startswith("snapshot\t") and lines[0].endswith("\tsecond"), f"psql printed {out!r}")
        C.expect(lines[1].startswith("update\t") and lines[1].endswith("\tedited"), f"psql printed {out!r}")
    finally:
        if p.poll() is None:
            p.kill()


async def check_asyncpg_table_channel():
    """A channel named ns_table carries that table's committed changes as JSON."""
    listener = await aconnect()
    writer = await aconnect()
    try:
        got = asyncio.Queue()
        await listener.add_listener(f"{NS}_msgs", lambda *args: got.put_nowait(args[3]))
        await writer.execute(f"INSERT INTO {NS}.msgs VALUES (3, 'third')")
        async with writer.transaction():
            await writer.execute(f"DELETE FROM {NS}.msgs WHERE id = 3")
        first = json.loads(await asyncio.wait_for(got.get(), 5))
        second = json.loads(await asyncio.wait_for(got.get(), 5))
        C.expect((first["op"], first["pk"]) == ("insert", 3), f"first change {first!r}")
        C.expect((second["op"], second["pk"]) == ("delete", 3), f"second change {second!r}")
        C.expect(second["seq"] > first["seq"], f"seq does not grow: {first!r} {second!r}")
    finally:
        await listener.close()
        await writer.close()


def main():
    R.run("create_namespace_and_table", check_setup)
    R.stop_if_failed("create_namespace_and_table")
    R.run("psycopg_notifies", check_psycopg_notifies)
    asyncio.run(R.arun("asyncpg_add_listener", check_asyncpg_add_listener))
    if is_strata():
        R.run("psycopg_copy_subscribe", check_psycopg_copy_subscribe)
        R.run("psycopg_cancel_subscribe_57014", check_psycopg_cancel_subscribe)
        R.run("psql_copy_subscribe", check_psql_copy_subscribe)
        asyncio.run(R.arun("asyncpg_table_channel", check_asyncpg_table_channel))
    else:
        print("  (not Strata: live-query checks skipped)")
    R.finish()


if __name__ == "__main__":
    main()
