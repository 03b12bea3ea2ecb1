"""Shared pieces of the Python client-compatibility tests (psycopg 3, psycopg2, asyncpg).

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; STRATA_NS names the
namespace (schema) the test owns: it is dropped and created again at the start.
"""
import datetime as dt
import json
import os
import re
import sys
import traceback
import uuid
from decimal import Decimal

UTC = dt.timezone.utc


def env():
    ns = os.environ.get("STRATA_NS") or "clients_py"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", ns):
        sys.exit(f"STRATA_NS must be a lower-case identifier, got {ns!r}")
    return dict(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=int(os.environ.get("PGPORT", "5432")),
        user=os.environ.get("PGUSER", "root"),
        password=os.environ.get("PGPASSWORD", ""),
        dbname=os.environ.get("PGDATABASE", "strata"),
        ns=ns,
    )


def create_schema_sql(ns):
    # Strata accepts CREATE SCHEMA as a synonym of CREATE NAMESPACE; STRATA_DIALECT=strata forces the
    # Strata spelling.
    if os.environ.get("STRATA_DIALECT") == "strata":
        return f"CREATE NAMESPACE {ns}"
    return f"CREATE SCHEMA {ns}"


def drop_schema_sql(ns):
    if os.environ.get("STRATA_DIALECT") == "strata":
        return f"DROP NAMESPACE IF EXISTS {ns} CASCADE"
    return f"DROP SCHEMA IF EXISTS {ns} CASCADE"


# The table every client creates: one column per supported type.
COLUMNS = [
    # (name, SQL type)
    ("id", "BIGINT PRIMARY KEY"),
    ("b", "BOOLEAN"),
    ("i2", "SMALLINT"),
    ("i4", "INTEGER"),
    ("i8", "BIGINT"),
    ("f4", "REAL"),
    ("f8", "DOUBLE PRECISION"),
    ("num", "NUMERIC(20,6)"),
    ("txt", "TEXT"),
    ("vc", "VARCHAR(20)"),
    ("bin", "BYTEA"),
    ("d", "DATE"),
    ("tm", "TIME"),
    ("ts", "TIMESTAMP"),
    ("tstz", "TIMESTAMPTZ"),
    ("u", "UUID"),
    ("j", "JSON"),
    ("jb", "JSONB"),
    ("ai", "INT[]"),
    ("ai8", "BIGINT[]"),
    ("af8", "DOUBLE PRECISION[]"),
    ("ab", "BOOLEAN[]"),
    ("at", "TEXT[]"),
]
NAMES = [c for c, _ in COLUMNS]
DATA_NAMES = NAMES[1:]


def create_table_sql(table):
    return f"CREATE TABLE {table} (" + ", ".join(f"{c} {t}" for c, t in COLUMNS) + ")"


# Values per row, keyed by column. json/jsonb hold Python objects (the test wraps them as its driver
# wants); jsonb values are written in Postgres' canonical jsonb output form so that the text read back is
# the same as the text written on both servers.
ROW_FULL = dict(
    b=True,
    i2=12345,
    i4=-123456789,
    i8=9007199254740993,  # 2^53 + 1
    f4=1.5,
    f8=3.141592653589793,
    num=Decimal("12345678901234.123456"),
    txt="héllo wörld ✓",
    vc="varchar",
    bin=b"\x00\x01\xde\xad\xbe\xef\xff",
    d=dt.date(2024, 2, 29),
    tm=dt.time(13, 45, 56, 123456),
    ts=dt.datetime(2024, 2, 29, 13, 45, 56, 123456),
    tstz=dt.datetime(2024, 2, 29, 13, 45, 56, 123456, tzinfo=UTC),
    u=uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    j={"a": 1, "b": [1, 2]},
    jb={"k": "v", "n": None},
    ai=[1, 2, None],
    ai8=[9007199254740993, -1],
    af8=[1.5, -2.25],
    ab=[True, False],
    at=["a", "b c", ""],
)
ROW_NULL = {c: None for c in DATA_NAMES}
ROW_EDGE = dict(
    b=False,
    i2=-32768,
    i4=2147483647,
    i8=-9223372036854775808,
    f4=-0.25,
    f8=1e300,
    num=Decimal("-0.000001"),
    txt="",
    vc="x" * 20,
    bin=b"",
    d=dt.date(1970, 1, 1),
    tm=dt.time(0, 0, 0),
    ts=dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    tstz=dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    u=uuid.UUID("00000000-0000-0000-0000-000000000000"),
    j=[],
    jb={"nested": {"x": [True, False]}},
    ai=[],
    ai8=[None],
    af8=[],
    ab=[None, True],
    at=['x"y', "back\\slash", "NULL", " sp ", None, "{}", "a,b"],
)
# Row id -> values; a test inserts these rows with text parameters at ids 1..3 and, where the driver
# can, with binary parameters at ids 11..13.
ROWS = {1: ROW_FULL, 2: ROW_NULL, 3: ROW_EDGE}


def normalise(col, v):
    """Driver-independent form of a value read back, for comparison."""
    if v is None:
        return None
    if col in ("j", "jb") and isinstance(v, (str, bytes)):
        return json.loads(v)
    if col == "u" and isinstance(v, str):
        return uuid.UUID(v)
    if col == "u" and not isinstance(v, uuid.UUID) and hasattr(v, "hex"):  # asyncpg's pgproto UUID
        return uuid.UUID(str(v))
    if col == "bin" and isinstance(v, memoryview):
        return bytes(v)
    if col == "tstz" and isinstance(v, dt.datetime):
        return v.astimezone(UTC)
    if col in ("ai", "ai8", "af8", "ab", "at"):
        return list(v)
    return v


def compare_row(rid, expected, got):
    """Return a list of mismatch descriptions (empty if equal)."""
    bad = []
    for col in DATA_NAMES:
        e, g = expected[col], normalise(col, got[col])
        if col == "tstz" and e is not None and g is not None and g.tzinfo is None:
            bad.append(f"id={rid} {col}: expected aware {e!r}, got naive {g!r}")
            continue
        if type(e) is float and type(g) is float:
            ok = e == g
        else:
            ok = e == g and (e is None) == (g is None)
        if not ok:
            bad.append(f"id={rid} {col}: expected {e!r}, got {g!r}")
    return bad


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


class SqlStateError(Exception):
    pass


class Runner:
    """Runs named checks, prints one line each, and keeps going after a failure."""

    def __init__(self, client):
        self.client = client
        self.failed = []
        self.passed = []

    def run(self, name, fn, *args):
        try:
            fn(*args)
        except CheckFailed as e:
            self._fail(name, str(e))
            return False
        except Exception as e:  # driver errors
            code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
            detail = f"{type(e).__module__}.{type(e).__name__}: {str(e).strip()}"
            if code:
                detail += f" [SQLSTATE {code}]"
            if os.environ.get("STRATA_CLIENTS_TRACE"):
                traceback.print_exc()
            self._fail(name, detail)
            return False
        self.passed.append(name)
        print(f"  ok   {self.client}: {name}", flush=True)
        return True

    async def arun(self, name, fn, *args):
        """run() for a coroutine function."""
        try:
            await fn(*args)
        except CheckFailed as e:
            self._fail(name, str(e))
            return False
        except Exception as e:  # driver errors
            code = getattr(e, "sqlstate", None)
            detail = f"{type(e).__module__}.{type(e).__name__}: {str(e).strip()}"
            if code:
                detail += f" [SQLSTATE {code}]"
            if os.environ.get("STRATA_CLIENTS_TRACE"):
                traceback.print_exc()
            self._fail(name, detail)
            return False
        self.passed.append(name)
        print(f"  ok   {self.client}: {name}", flush=True)
        return True

    def _fail(self, name, msg):
        self.failed.append(name)
        print(f"  FAIL {self.client}: {name}: {msg}", flush=True)

    def finish(self):
        total = len(self.passed) + len(self.failed)
        print(f"{self.client}: {len(self.passed)} passed, {len(self.failed)} failed (of {total})")
        if self.failed:
            print(f"{self.client}: failed checks: {', '.join(self.failed)}")
            sys.exit(1)
        sys.exit(0)

    def stop_if_failed(self, name):
        if name in self.failed:
            print(f"{self.client}: cannot go on without '{name}'")
            self.finish()
