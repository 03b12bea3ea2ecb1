"""SQLAlchemy 2 (over psycopg 3 and psycopg2), pandas and pg8000 client-compatibility test
(see ../README.md): Core, ORM, reflection, nested transactions (savepoints), streamed results
(server-side cursors), pandas read_sql/to_sql. Exit 0 when every check passes."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import pandas as pd  # noqa: E402
import pg8000.native  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy import orm  # noqa: E402

E = C.env()
NS = E["ns"]
R = C.Runner("sqlalchemy")


def engine(driver):
    url = sa.engine.URL.create(f"postgresql+{driver}", username=E["user"], password=E["password"],
                               host=E["host"], port=E["port"], database=E["dbname"])
    return sa.create_engine(url)


DRIVERS = ["psycopg", "psycopg2"]
ENGINES = {}


class Base(orm.DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    __table_args__ = {"schema": NS}
    id: orm.Mapped[int] = orm.mapped_column(sa.BigInteger, primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)
    qty: orm.Mapped[int] = orm.mapped_column(sa.Integer, server_default=sa.text("3"))


def table(driver):
    return f"{NS}.items_{driver}"


def check_connect(driver):
    eng = engine(driver)
    with eng.connect() as c:
        v = c.execute(sa.text("SELECT 41 + 1")).scalar_one()
    C.expect(v == 42, f"SELECT 41 + 1 gave {v!r}")
    ENGINES[driver] = eng


def check_setup():
    with ENGINES["psycopg"].begin() as c:
        c.execute(sa.text(C.drop_schema_sql(NS)))
        c.execute(sa.text(C.create_schema_sql(NS)))
        c.execute(sa.text(f"CREATE TABLE {NS}.items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                          f"qty INT DEFAULT 3)"))
        for d in DRIVERS:
            c.execute(sa.text(f"CREATE TABLE {table(d)} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                              f"qty INT DEFAULT 3)"))


def check_core(driver):
    t = table(driver)
    with ENGINES[driver].begin() as c:
        c.execute(sa.text(f"INSERT INTO {t} (id, name) VALUES (:id, :name)"),
                  [{"id": i, "name": f"n{i}"} for i in range(1, 6)])
        rows = c.execute(sa.text(f"SELECT id, name, qty FROM {t} WHERE id >= :lo ORDER BY id"),
                         {"lo": 4}).all()
    C.expect([tuple(r) for r in rows] == [(4, "n4", 3), (5, "n5", 3)], f"rows {rows}")


def check_reflection(driver):
    insp = sa.inspect(ENGINES[driver])
    C.expect(NS in insp.get_schema_names(), f"schemas {insp.get_schema_names()}")
    names = insp.get_table_names(schema=NS)
    C.expect("items" in names, f"tables {names}")
    cols = {c["name"]: c for c in insp.get_columns("items", schema=NS)}
    C.expect(list(cols) == ["id", "name", "qty"], f"columns {list(cols)}")
    C.expect(isinstance(cols["id"]["type"], sa.BigInteger), f"id type {cols['id']['type']!r}")
    C.expect(isinstance(cols["name"]["type"], sa.Text), f"name type {cols['name']['type']!r}")
    C.expect(cols["name"]["nullable"] is False and cols["qty"]["nullable"] is True,
             f"nullability {[(n, c['nullable']) for n, c in cols.items()]}")
    C.expect(cols["qty"]["default"] == "3", f"qty default {cols['qty']['default']!r}")
    pk = insp.get_pk_constraint("items", schema=NS)
    C.expect(pk["constrained_columns"] == ["id"], f"primary key {pk}")
    C.expect(insp.get_foreign_keys("items", schema=NS) == [], "foreign keys")
    C.expect(insp.get_indexes("items", schema=NS) == [], "indexes besides the primary key")
    uniques = insp.get_unique_constraints("items", schema=NS)
    C.expect(uniques == [], f"unique constraints {uniques}")
    C.expect(insp.get_view_names(schema=NS) == [], "views")
    comment = insp.get_table_comment("items", schema=NS)
    C.expect(comment.get("text") is None, f"table comment {comment}")
    t = sa.Table("items", sa.MetaData(), autoload_with=ENGINES[driver], schema=NS)
    C.expect([c.name for c in t.primary_key.columns] == ["id"], f"autoload primary key {t.primary_key}")


def check_orm(driver):
    with orm.Session(ENGINES[driver]) as s:
        base = 100 if driver == "psycopg" else 200
        s.add_all([Item(id=base + i, name=f"orm{i}") for i in range(3)])
        s.commit()
        got = s.scalars(sa.select(Item).where(Item.id >= base, Item.id < base + 100).order_by(Item.id)).all()
        C.expect([(i.id, i.name, i.qty) for i in got] == [(base + i, f"orm{i}", 3) for i in range(3)],
                 f"ORM rows {[(i.id, i.name, i.qty) for i in got]}")
        got[0].name = "changed"
        s.delete(got[1])
        s.commit()
        names = s.scalars(sa.select(Item.name).where(Item.id >= base, Item.id < base + 100)
                          .order_by(Item.id)).all()
        C.expect(names == ["changed", "orm2"], f"after update/delete {names}")


def check_begin_nested(driver):
    t = table(driver)
    with ENGINES[driver].begin() as c:
        c.execute(sa.text(f"INSERT INTO {t} (id, name) VALUES (50, 'outer')"))
        sp = c.begin_nested()
        c.execute(sa.text(f"INSERT INTO {t} (id, name) VALUES (51, 'inner')"))
        sp.rollback()
        with c.begin_nested():
            c.execute(sa.text(f"INSERT INTO {t} (id, name) VALUES (52, 'kept')"))
    with ENGINES[driver].connect() as c:
        ids = c.execute(sa.text(f"SELECT id FROM {t} WHERE id >= 50 AND id < 60 ORDER BY id")).scalars().all()
    C.expect(ids == [50, 52], f"after begin_nested rollback/commit: {ids}")


def check_stream_results(driver):
    with ENGINES[driver].connect() as c:
        r = c.execution_options(stream_results=True, max_row_buffer=25).execute(
            sa.text("SELECT x FROM generate_series(1, 500) AS g(x)"))
        total = n = 0
        for row in r:
            total += row[0]
            n += 1
    C.expect((n, total) == (500, 125250), f"streamed {n} rows summing to {total}")


def check_pandas(driver):
    t = table(driver)
    df = pd.DataFrame({"id": [300, 301], "name": ["p0", "p1"], "qty": [7, 8]})
    df.to_sql(f"items_{driver}", ENGINES[driver], schema=NS, if_exists="append", index=False)
    back = pd.read_sql(sa.text(f"SELECT id, name, qty FROM {t} WHERE id >= 300 ORDER BY id"), ENGINES[driver])
    C.expect(back.to_dict("list") == {"id": [300, 301], "name": ["p0", "p1"], "qty": [7, 8]},
             f"read_sql gave {back.to_dict('list')}")


def check_pg8000():
    con = pg8000.native.Connection(E["user"], host=E["host"], port=E["port"], database=E["dbname"],
                                   password=E["password"])
    try:
        t = f"{NS}.items"
        con.run(f"INSERT INTO {t} (id, name) VALUES (:id, :name)", id=900, name="pg8000")
        rows = con.run(f"SELECT id, name, qty FROM {t} WHERE id = :id", id=900)
        C.expect(rows == [[900, "pg8000", 3]], f"pg8000 rows {rows}")
        con.run("START TRANSACTION")
        con.run(f"DELETE FROM {t} WHERE id = 900")
        con.run("ROLLBACK")
        n = con.run(f"SELECT count(*) FROM {t} WHERE id = 900")[0][0]
        C.expect(n == 1, f"after ROLLBACK {n} rows")
    finally:
        con.close()


def main():
    for d in DRIVERS:
        R.run(f"{d}_connect", check_connect, d)
        R.stop_if_failed(f"{d}_connect")
    R.run("create_namespace_and_tables", check_setup)
    R.stop_if_failed("create_namespace_and_tables")
    for d in DRIVERS:
        R.run(f"{d}_core_text_params", check_core, d)
        R.run(f"{d}_reflection", check_reflection, d)
        R.run(f"{d}_orm", check_orm, d)
        R.run(f"{d}_begin_nested_savepoints", check_begin_nested, d)
        R.run(f"{d}_stream_results_server_cursor", check_stream_results, d)
        R.run(f"{d}_pandas_to_sql_read_sql", check_pandas, d)
    R.run("pg8000_native", check_pg8000)
    for eng in ENGINES.values():
        eng.dispose()
    R.finish()


if __name__ == "__main__":
    main()
