"""Strata against PostgreSQL 15 (and DataFusion / DuckDB on Strata's own Parquet files).

Run through bench/run.sh, which builds Strata and prepares the Python environment. Starts a Strata
server and a throw-away PostgreSQL cluster with the same durability, runs the same work against both
with the same clients (pgbench -M prepared for the transaction workloads, psycopg for the timed
ones), and writes one table: workload, Strata, PostgreSQL, ratio, target. The table also goes to
JSON and to an SVG chart; the full mode puts them into docs/.
"""

import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg

# ---------------------------------------------------------------- sizes

FULL = dict(duration=10, clients=8, rows=100_000, scan_rows=10_000_000, chunk=1_000_000,
            users=(1_000, 100_000), rows_per_user=10, flush_rows=1_000_000,
            insert_rows=1_000_000, copy_rows=1_000_000, flush_rounds=20)
QUICK = dict(duration=2, clients=2, rows=2_000, scan_rows=60_000, chunk=30_000,
             users=(20, 200), rows_per_user=5, flush_rows=20_000,
             insert_rows=20_000, copy_rows=20_000, flush_rounds=3)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- servers

class Server:
    """One database under test: how to reach it and how to stop it."""

    def __init__(self, name, port, user, db, pid=None):
        self.name, self.port, self.user, self.db, self.pid = name, port, user, db, pid

    def dsn(self, user=None, password=None):
        d = f"host=127.0.0.1 port={self.port} user={user or self.user} dbname={self.db}"
        return d + (f" password={password}" if password else "")

    def connect(self, user=None, password=None):
        return psycopg.connect(self.dsn(user, password), autocommit=True)

    def psql(self, sql, user=None, password=None, stdin=None):
        env = dict(os.environ, PGPASSWORD=password or "")
        cmd = ["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
               "-U", user or self.user, "-d", self.db]
        if sql is not None:
            cmd += ["-c", sql]
        out = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{self.name}: psql failed: {out.stderr.strip()[:2000]}")
        return out.stdout


def start_strata(binary, work, name, sync):
    port = free_port()
    data = os.path.join(work, name)
    os.makedirs(data, exist_ok=True)
    conf = os.path.join(work, name + ".toml")
    with open(conf, "w") as f:
        f.write(f"sync_writes = {'true' if sync else 'false'}\nmax_connections = 300\n"
                "[limits]\nmax_transaction_memory_mb = 2048\nmax_copy_memory_mb = 4096\n")
    logf = open(os.path.join(work, name + ".log"), "w")
    env = dict(os.environ)
    env.pop("STRATA_ROOT_PASSWORD", None)
    p = subprocess.Popen([binary, "serve", "--config", conf, "--listen", f"127.0.0.1:{port}",
                          "--data-dir", data], stdout=logf, stderr=subprocess.STDOUT, env=env)
    for _ in range(600):
        with open(os.path.join(work, name + ".log")) as f:
            if "ready to accept connections" in f.read():
                break
        if p.poll() is not None:
            raise RuntimeError(f"strata exited: see {name}.log")
        time.sleep(0.1)
    s = Server("strata", port, "root", "strata", p.pid)
    s.proc, s.data = p, data
    return s


def stop_strata(s):
    if s.proc.poll() is None:
        s.proc.terminate()
        try:
            s.proc.wait(60)
        except subprocess.TimeoutExpired:
            s.proc.kill()


def start_postgres(pgbin, work, sync):
    port = free_port()
    data = os.path.join(work, "pg")
    os.makedirs(data)
    shutil.chown(data, "postgres")
    os.chmod(work, 0o1777)
    run_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run_pg + [f"{pgbin}/initdb", "-D", data, "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    opts = (f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            f"-c fsync=on -c synchronous_commit={'on' if sync else 'off'} -c shared_buffers=1GB")
    subprocess.run(run_pg + [f"{pgbin}/pg_ctl", "-D", data, "-l", os.path.join(work, "pg.log"), "-w",
                             "-o", opts, "start"], check=True, capture_output=True)
    s = Server("postgres", port, "postgres", "postgres")
    s.stop = lambda: subprocess.run(run_pg + [f"{pgbin}/pg_ctl", "-D", data, "-m", "fast", "stop"],
                                    capture_output=True)
    return s


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- clients

def pgbench(server, script, work, clients, duration, user=None, password=None, log_prefix=None):
    """Transactions per second of `script` (pgbench -M prepared); with log_prefix, per-transaction
    logs are kept there."""
    path = os.path.join(work, "script.sql")
    with open(path, "w") as f:
        f.write(script)
    cmd = ["pgbench", "-n", "-M", "prepared", "-T", str(duration), "-c", str(clients),
           "-j", str(min(clients, 2)), "-h", "127.0.0.1", "-p", str(server.port),
           "-U", user or server.user, "-f", path]
    if log_prefix:
        cmd += ["-l", f"--log-prefix={log_prefix}"]
    cmd.append(server.db)
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, PGPASSWORD=password or ""), cwd=work)
    failed = [l for l in out.stdout.splitlines() + out.stderr.splitlines() if "failed" in l or "ERROR" in l]
    for line in out.stdout.splitlines():
        if line.startswith("tps"):
            tps = float(line.split()[2])
            if out.returncode != 0:
                log(f"  {server.name}: pgbench exited {out.returncode}: {' | '.join(failed[:3])}")
            return tps
    raise RuntimeError(f"{server.name}: pgbench failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")


def pgbench_latencies(prefix):
    """(completion time s, latency ms) of every transaction in pgbench's logs."""
    rows = []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 6 and p[2].isdigit():
                    rows.append((int(p[4]) + int(p[5]) / 1e6, int(p[2]) / 1000))
    return rows


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q / 100 * len(v)))]


def best_of(run, runs=3):
    """Best wall time (s) of `runs` calls of `run`."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


def timed(conn, sql):
    """Best wall time (s) of a query through a connection, rows fetched."""
    return best_of(lambda: conn.execute(sql).fetchall())


def copy_file(server, table, path, direction):
    """Rows per second of psql's \\copy of `path` in or out of `table`, and the seconds it took."""
    op = "FROM" if direction == "in" else "TO"
    t = time.perf_counter()
    server.psql(f"\\copy {table} {op} '{path}'")
    return time.perf_counter() - t


def wait_job(conn, job_id, timeout=3600):
    """Waits for a Strata job to end; returns its result JSON (raises unless it completed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = conn.execute("SELECT status, result, error_message FROM system.jobs WHERE job_id = %s",
                           (job_id,)).fetchone()
        if row and row[0] in ("completed", "failed", "cancelled"):
            if row[0] != "completed":
                raise RuntimeError(f"job {job_id} {row[0]}: {row[2]}")
            return json.loads(row[1]) if row[1] else {}
        time.sleep(0.005)
    raise RuntimeError(f"job {job_id} did not finish")


def flush(conn, table):
    job = conn.execute(f"FLUSH TABLE {table}").fetchone()[0]
    return wait_job(conn, job)


def write_rows(path, start, count, groups=1000):
    with open(path, "w") as f:
        w = f.write
        for i in range(start, start + count):
            w(f"{i}\t{i % groups}\t{i * 7 % 100003}\tbody of row {i} with a few words in it\n")


# ---------------------------------------------------------------- the report

class Report:
    def __init__(self):
        self.rows = []

    def add(self, workload, unit, strata, postgres=None, target=None, higher=True, note="", compare=True):
        ratio = None
        if compare and postgres not in (None, 0) and strata is not None:
            ratio = strata / postgres if higher else postgres / strata
        self.rows.append(dict(workload=workload, unit=unit, strata=strata, postgres=postgres,
                              ratio=ratio, target=target, higher_is_better=higher, note=note))
        log(f"  {workload}: strata {fmt(strata)} {unit}"
            + (f", postgres {fmt(postgres)}, ratio {ratio:.2f}x" if ratio is not None else "")
            + (f" ({note})" if note else ""))

    def table(self):
        head = f"| workload | unit | Strata | PostgreSQL | Strata vs PostgreSQL | target |\n|---|---|---:|---:|---:|---|\n"
        lines = []
        for r in self.rows:
            ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else ""
            note = f" ({r['note']})" if r["note"] else ""
            name = f"{r['workload']}{note}".replace("|", "\\|")
            lines.append(f"| {name} | {r['unit']} | {fmt(r['strata'])} | {fmt(r['postgres'])} "
                         f"| {ratio} | {r['target'] or ''} |")
        return head + "\n".join(lines) + "\n"


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float) and v != v:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def svg_chart(report, title):
    """Horizontal bars: Strata relative to PostgreSQL (log scale), 1× marked."""
    rows = [r for r in report.rows if r["ratio"] is not None and r["ratio"] > 0]
    import math
    lo, hi = 0.01, 100.0
    width, left, bar, gap = 900, 330, 18, 8
    height = 60 + len(rows) * (bar + gap) + 40
    plot = width - left - 30

    def x(v):
        v = min(max(v, lo), hi)
        return left + plot * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>']
    for t in (0.01, 0.1, 1, 10, 100):
        out.append(f'<line x1="{x(t):.1f}" y1="40" x2="{x(t):.1f}" y2="{height - 30}" '
                   f'stroke="{"#333" if t == 1 else "#ddd"}" stroke-width="{2 if t == 1 else 1}"/>')
        out.append(f'<text x="{x(t):.1f}" y="{height - 14}" text-anchor="middle">{t:g}×</text>')
    for i, r in enumerate(rows):
        y = 50 + i * (bar + gap)
        color = "#2b8a3e" if r["ratio"] >= 1 else "#c92a2a"
        name = r["workload"].replace("&", "&amp;").replace("<", "&lt;")
        out.append(f'<text x="{left - 8}" y="{y + bar - 5}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{x(lo):.1f}" y="{y}" width="{x(r["ratio"]) - x(lo):.1f}" height="{bar}" fill="{color}"/>')
        out.append(f'<text x="{x(r["ratio"]) + 4:.1f}" y="{y + bar - 5}">{r["ratio"]:.2f}×</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- workloads

def setup_kv(s, rows, cold):
    """bench.kv (hot) and bench.kvc (flushed): the same `rows` rows."""
    strata = s.name == "strata"
    policy = " FLUSH ROWS 1000000 INTERVAL 86400" if strata else ""
    s.psql("CREATE SCHEMA bench" if not strata else "CREATE NAMESPACE bench")
    for t in ("kv", "kvc"):
        s.psql(f"CREATE TABLE bench.{t} (id BIGINT PRIMARY KEY, v TEXT, n BIGINT){policy}")
        s.psql(f"INSERT INTO bench.{t} SELECT i, 'value-' || i, i FROM generate_series(1, {rows}) AS g(i)")
    for t in ("ins", "ins2"):
        s.psql(f"CREATE TABLE bench.{t} (id BIGINT PRIMARY KEY, v TEXT, n BIGINT){policy}")
    if strata and cold:
        with s.connect() as c:
            flush(c, "bench.kvc")
    if not strata:
        s.psql("VACUUM ANALYZE")


def transactions(servers, report, cfg, work):
    rows, clients, duration = cfg["rows"], cfg["clients"], cfg["duration"]
    scripts = [
        ("single-row INSERT", "\\set id random(1, 9000000000000000000)\n"
         "INSERT INTO bench.ins (id, v, n) VALUES (:id, 'value', :id);\n", "≥ 2×"),
        ("single-row INSERT, 'v-' || $2", "\\set id random(1, 9000000000000000000)\n"
         "INSERT INTO bench.ins2 (id, v, n) VALUES (:id, 'v-' || :id, :id);\n", "≥ 2×"),
        ("PK point SELECT, hot", f"\\set id random(1, {rows})\nSELECT v, n FROM bench.kv WHERE id = :id;\n", "≥ 1×"),
        ("PK point SELECT, cold", f"\\set id random(1, {rows})\nSELECT v, n FROM bench.kvc WHERE id = :id;\n", "≥ 1×"),
        ("UPDATE by PK", f"\\set id random(1, {rows})\nUPDATE bench.kv SET n = n + 1 WHERE id = :id;\n", "≥ 1×"),
        ("100-key range aggregate", f"\\set lo random(1, {rows - 100})\n\\set hi :lo + 99\n"
         "SELECT count(*), sum(n) FROM bench.kv WHERE id BETWEEN :lo AND :hi;\n", "≥ 1×"),
    ]
    for name, script, target in scripts:
        tps = {s.name: pgbench(s, script, work, clients, duration) for s in servers}
        report.add(name, "tps", tps["strata"], tps["postgres"], target)


def cold_scan(strata, pg, report, cfg, work):
    """Loads scan_rows rows by COPY in chunks (a flush after each on Strata), then the GROUP BY."""
    n, chunk = cfg["scan_rows"], cfg["chunk"]
    ddl = "CREATE TABLE scan.facts (id BIGINT PRIMARY KEY, k INT, n BIGINT, body TEXT)"
    strata.psql(ddl + " FLUSH ROWS 1000000 INTERVAL 86400")
    pg.psql(ddl)
    path = os.path.join(work, "chunk.tsv")
    t_copy = {"strata": 0.0, "postgres": 0.0}
    flush_rates = []
    with strata.connect() as sc:
        for start in range(1, n + 1, chunk):
            count = min(chunk, n + 1 - start)
            write_rows(path, start, count)
            for s in (strata, pg):
                t_copy[s.name] += copy_file(s, "scan.facts", path, "in")
            res = flush(sc, "scan.facts")
            if res.get("duration_ms"):
                flush_rates.append(res["rows_flushed"] / (res["duration_ms"] / 1000))
    os.remove(path)
    report.add(f"load {n:,} rows by COPY ({chunk:,}-row chunks)", "rows/s", n / t_copy["strata"],
               n / t_copy["postgres"], "≥ 1×")
    report.add(f"flush of {chunk:,} hot rows", "rows/s", statistics.median(flush_rates), None, "≥ 500,000")
    report.add("peak RSS while loading by COPY", "MiB", peak_rss_mib(strata.pid), None, "≤ 512", higher=False)
    pg.psql("VACUUM ANALYZE scan.facts")
    query = "SELECT k, count(*), sum(n), min(id), max(id) FROM scan.facts GROUP BY k"
    filtered = "SELECT k, count(*), sum(n) FROM scan.facts WHERE n < 1000 GROUP BY k"
    with strata.connect() as sc, pg.connect() as pc:
        secs = {"strata": timed(sc, query), "postgres": timed(pc, query)}
        fsecs = {"strata": timed(sc, filtered), "postgres": timed(pc, filtered)}
    files = sorted(glob.glob(os.path.join(strata.data, "storage", "**", "facts", "*.parquet"), recursive=True))
    direct = direct_scans(files, query.replace("scan.facts", "facts"), filtered.replace("scan.facts", "facts"))
    report.add(f"scan + GROUP BY, {n:,} cold rows", "s", secs["strata"], secs["postgres"], "≥ 10×", higher=False)
    report.add(f"scan + filter + GROUP BY, {n:,} cold rows", "s", fsecs["strata"], fsecs["postgres"], "",
               higher=False)
    for engine, (a, b) in direct.items():
        report.add(f"same GROUP BY, {engine} on the same {len(files)} Parquet files", "s", a, None,
                   "Strata ≤ 1.3× DataFusion" if engine == "DataFusion" else "", higher=False,
                   note=f"Strata/{engine} {secs['strata'] / a:.2f}×")
        report.add(f"same filtered GROUP BY, {engine}", "s", b, None, "", higher=False,
                   note=f"Strata/{engine} {fsecs['strata'] / b:.2f}×")


def direct_scans(files, query, filtered):
    """Wall times of the queries over the Parquet files read directly by DataFusion and DuckDB."""
    out = {}
    if not files:
        return out
    try:
        import datafusion
        ctx = datafusion.SessionContext()
        ctx.register_listing_table("facts", os.path.dirname(files[0]), file_extension=".parquet")

        out["DataFusion"] = tuple(best_of(lambda q=q: ctx.sql(q).collect()) for q in (query, filtered))
    except ImportError:
        log("  (python datafusion not installed: no direct DataFusion scan)")
    try:
        import duckdb
        con = duckdb.connect()
        con.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet({json.dumps(files)})")

        out["DuckDB"] = tuple(best_of(lambda q=q: con.execute(q).fetchall()) for q in (query, filtered))
    except ImportError:
        log("  (duckdb not installed: no DuckDB scan)")
    return out


def user_tables(strata, pg, report, cfg, work):
    """One user's query with few and with many users in a USER table."""
    per = cfg["rows_per_user"]
    strata.psql("CREATE USER TABLE bench.msgs (id BIGINT PRIMARY KEY, body TEXT, n BIGINT) "
                "FLUSH ROWS 1000000 INTERVAL 86400")
    strata.psql("CREATE USER bench_u WITH PASSWORD 'pw' ROLE user")
    pg.psql("CREATE TABLE bench.msgs (user_id TEXT, id BIGINT, body TEXT, n BIGINT, PRIMARY KEY (user_id, id))")
    values = lambda: ", ".join(f"({i}, 'message {i}', {i})" for i in range(1, per + 1))
    strata.psql(None, stdin=f"EXECUTE AS USER 'bench_u' (INSERT INTO bench.msgs VALUES {values()});\n")
    pg.psql(f"INSERT INTO bench.msgs SELECT 'bench_u', i, 'message ' || i, i FROM generate_series(1, {per}) g(i)")
    made = 1
    script_s = "SELECT count(*), sum(n) FROM bench.msgs;\n"
    script_p = "SELECT count(*), sum(n) FROM bench.msgs WHERE user_id = 'bench_u';\n"
    results = {}
    for users in cfg["users"]:
        sql = []
        for u in range(made, users):
            sql.append(f"CREATE USER u{u} ROLE user;\nEXECUTE AS USER 'u{u}' (INSERT INTO bench.msgs VALUES {values()});\n")
        t = time.perf_counter()
        strata.psql(None, stdin="".join(sql))
        log(f"  {users:,} users: made {users - made:,} users with {per} rows each in {time.perf_counter() - t:.1f} s")
        pg.psql(f"INSERT INTO bench.msgs SELECT 'u' || u, i, 'message ' || i, i "
                f"FROM generate_series({made}, {users - 1}) u, generate_series(1, {per}) i")
        pg.psql("VACUUM ANALYZE bench.msgs")
        made = users
        hot = pgbench(strata, script_s, work, cfg["clients"], cfg["duration"], user="bench_u", password="pw")
        t = time.perf_counter()
        with strata.connect() as c:
            res = flush(c, "bench.msgs")
        log(f"  flushed {res.get('rows_flushed')} rows of {res.get('users_count')} users in {time.perf_counter() - t:.1f} s")
        cold = pgbench(strata, script_s, work, cfg["clients"], cfg["duration"], user="bench_u", password="pw")
        pgt = pgbench(pg, script_p, work, cfg["clients"], cfg["duration"])
        results[users] = (hot, cold, pgt)
        report.add(f"one user's rows, {users:,} users, hot", "tps", hot, pgt, "")
        report.add(f"one user's rows, {users:,} users, cold", "tps", cold, pgt, "")
    few, many = cfg["users"]
    for i, tier in ((0, "hot"), (1, "cold")):
        report.add(f"one user's query, {tier}: latency growth {few:,} → {many:,} users", "×",
                   results[few][i] / results[many][i], results[few][2] / results[many][2], "≤ 1.2×",
                   higher=False, compare=False)


def flush_under_writers(strata, pg, report, cfg, work):
    """FLUSH TABLE's response time while writers insert, and the writers' latency while a large
    flush commits (PostgreSQL: the same writers while a CHECKPOINT runs)."""
    import threading
    strata.psql("CREATE TABLE bench.fl (id BIGINT PRIMARY KEY, v TEXT, n BIGINT) FLUSH ROWS 1000000 INTERVAL 86400")
    writer = "\\set id random(1, 9000000000000000000)\nINSERT INTO bench.fl (id, v, n) VALUES (:id, 'v', :id);\n"
    responses = []
    stop = threading.Event()

    def flusher():
        with strata.connect() as c:
            while not stop.is_set():
                t = time.perf_counter()
                job = c.execute("FLUSH TABLE bench.fl").fetchone()[0]
                responses.append((time.perf_counter() - t) * 1000)
                wait_job(c, job)
    th = threading.Thread(target=flusher)
    th.start()
    pgbench(strata, writer, work, cfg["clients"], max(cfg["duration"], 3))
    stop.set()
    th.join()
    report.add(f"FLUSH TABLE response p50, writers running ({len(responses)} flushes)", "ms",
               pct(responses, 50), None, "", higher=False)
    report.add("FLUSH TABLE response p99, writers running", "ms", pct(responses, 99), None, "≤ 100", higher=False)

    # Writers' latency while one large flush commits.
    big = cfg["flush_rows"]
    strata.psql("CREATE TABLE bench.big (id BIGINT PRIMARY KEY, k INT, n BIGINT, body TEXT) FLUSH ROWS 1000000 INTERVAL 86400")
    pg.psql("CREATE TABLE bench.big (id BIGINT PRIMARY KEY, k INT, n BIGINT, body TEXT)")
    path = os.path.join(work, "big.tsv")
    write_rows(path, 1, big)
    for s in (strata, pg):
        copy_file(s, "bench.big", path, "in")
    os.remove(path)
    writer = "\\set id random(1000000000, 9000000000000000000)\nINSERT INTO bench.big (id, k, n, body) VALUES (:id, 1, 2, 'x');\n"
    p99 = {}
    for s in (strata, pg):
        prefix = os.path.join(work, f"lat-{s.name}")
        window = []

        def background():
            time.sleep(1.0)
            with s.connect() as c:
                t0 = time.time()
                if s.name == "strata":
                    flush(c, "bench.big")
                else:
                    c.execute("CHECKPOINT")
                window.extend([t0, time.time()])
        th = threading.Thread(target=background)
        th.start()
        pgbench(s, writer, work, cfg["clients"], max(cfg["duration"], 4), log_prefix=prefix)
        th.join()
        lat = pgbench_latencies(prefix)
        if window:
            during = [l for (t, l) in lat if window[0] <= t <= window[1] + 0.001]
        else:
            during = []
        p99[s.name] = (pct(during, 99), pct([l for (_, l) in lat], 99), len(during), window[1] - window[0] if window else 0)
    report.add(f"writers' p99 while a {big:,}-row flush commits (PostgreSQL: during CHECKPOINT)", "ms",
               p99["strata"][0], p99["postgres"][0], "≤ 50", higher=False,
               note=f"flush took {p99['strata'][3]:.2f} s, {p99['strata'][2]} writes in it")
    report.add("writers' p99 over the whole run", "ms", p99["strata"][1], p99["postgres"][1], "", higher=False)


def copy_in_out(strata, pg, report, cfg, work):
    n = cfg["copy_rows"]
    path = os.path.join(work, "load.tsv")
    write_rows(path, 1, n)
    rate = {}
    for s in (strata, pg):
        s.psql("CREATE TABLE bench.load (id BIGINT PRIMARY KEY, k INT, n BIGINT, body TEXT)"
               + (" FLUSH ROWS 1000000 INTERVAL 86400" if s.name == "strata" else ""))
        rate[s.name] = (n / copy_file(s, "bench.load", path, "in"),
                        n / copy_file(s, "bench.load", os.path.join(work, "out.tsv"), "out"))
    report.add(f"COPY in, {n:,} rows", "rows/s", rate["strata"][0], rate["postgres"][0], "≥ 1×")
    report.add(f"COPY out, {n:,} rows", "rows/s", rate["strata"][1], rate["postgres"][1], "≥ 1×")


def insert_ingest_rss(binary, work, report, cfg, sync):
    """A fresh server ingesting insert_rows rows by 1000-row INSERT statements, default flush policy."""
    s = start_strata(binary, work, "strata-ingest", sync)
    try:
        s.psql("CREATE NAMESPACE bench")
        s.psql("CREATE TABLE bench.ing (id BIGINT PRIMARY KEY, k INT, n BIGINT, body TEXT)")
        n, per = cfg["insert_rows"], 1000
        t = time.perf_counter()
        proc = subprocess.Popen(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(s.port),
                                 "-U", "root", "-d", "strata"], stdin=subprocess.PIPE, text=True,
                                stdout=subprocess.DEVNULL)
        for start in range(1, n + 1, per):
            vals = ",".join(f"({i},{i % 1000},{i * 7},'body of row {i} with a few words in it')"
                            for i in range(start, min(start + per, n + 1)))
            proc.stdin.write(f"INSERT INTO bench.ing VALUES {vals};\n")
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("INSERT ingest failed")
        secs = time.perf_counter() - t
        report.add(f"peak RSS while inserting {n:,} rows (1,000-row INSERTs)", "MiB", peak_rss_mib(s.pid), None,
                   "≤ 512", higher=False, note=f"{n / secs:,.0f} rows/s")
    finally:
        stop_strata(s)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", required=True)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="directory for benchmarks.json/.svg (and the table)")
    ap.add_argument("--durability", choices=["async", "sync"], default="async")
    ap.add_argument("--only", help="comma-separated workload groups")
    a = ap.parse_args()
    cfg = dict(QUICK if a.quick else FULL)
    for k in ("duration", "clients", "rows", "scan_rows", "chunk", "flush_rows", "insert_rows", "copy_rows"):
        if os.environ.get(k.upper()):
            cfg[k] = int(os.environ[k.upper()])
    sync = a.durability == "sync"
    groups = (a.only or "scan,tx,flush,copy,rss,users").split(",")
    if os.environ.get("USERS"):
        cfg["users"] = tuple(int(u) for u in os.environ["USERS"].split(","))
    work = tempfile.mkdtemp(prefix="strata-bench-")
    os.chmod(work, 0o1777)
    report = Report()
    strata = pg = None
    started = time.time()

    def emit():
        """Writes what has been measured so far (a long run stopped midway keeps it)."""
        if not a.out:
            return
        meta = dict(mode="quick" if a.quick else "full", durability=a.durability, sizes=cfg,
                    seconds=round(time.time() - started),
                    date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    machine=f"{os.cpu_count()} cores", command="bench/run.sh " + " ".join(sys.argv[1:]))
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "benchmarks.json"), "w") as f:
            json.dump(dict(meta=meta, results=report.rows), f, indent=1)
        with open(os.path.join(a.out, "benchmarks.svg"), "w") as f:
            f.write(svg_chart(report, f"Strata vs PostgreSQL 15 ({meta['mode']} mode, {cfg['clients']} clients, "
                                      f"{os.cpu_count()} cores; right of 1× is Strata ahead)"))
        with open(os.path.join(a.out, "benchmarks-table.md"), "w") as f:
            f.write(report.table())
    try:
        strata = start_strata(a.strata, work, "strata", sync)
        pg = start_postgres(a.pgbin, work, sync)
        log(f"durability: {'fsync per commit on both (Strata sync_writes = true, PostgreSQL synchronous_commit = on)' if sync else 'no fsync per commit on either (Strata sync_writes = false, PostgreSQL synchronous_commit = off)'}")
        log(f"sizes: {cfg}")
        if "scan" in groups:
            log("scan: load, flush, GROUP BY")
            strata.psql("CREATE NAMESPACE scan")
            pg.psql("CREATE SCHEMA scan")
            cold_scan(strata, pg, report, cfg, work)
            emit()
        for s in (strata, pg):
            setup_kv(s, cfg["rows"], True)
        if "tx" in groups:
            log("transactions (pgbench -M prepared)")
            transactions([strata, pg], report, cfg, work)
            emit()
        if "flush" in groups:
            log("flush under writers")
            flush_under_writers(strata, pg, report, cfg, work)
            emit()
        if "copy" in groups:
            log("COPY in and out")
            copy_in_out(strata, pg, report, cfg, work)
            emit()
        if "rss" in groups:
            log("INSERT ingest")
            insert_ingest_rss(a.strata, work, report, cfg, sync)
            emit()
        # Last: with 100,000 users it is the longest.
        if "users" in groups:
            log("USER tables")
            user_tables(strata, pg, report, cfg, work)
            emit()
    finally:
        if strata:
            stop_strata(strata)
        if pg:
            pg.stop()
    emit()
    print(report.table())
    print(f"({'quick' if a.quick else 'full'} mode, {cfg['clients']} clients, {cfg['duration']} s per pgbench run, "
          f"durability {a.durability}, {round(time.time() - started)} s in all)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
