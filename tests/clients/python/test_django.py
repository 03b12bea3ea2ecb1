"""Django ORM client-compatibility test (see ../README.md): models mapped onto an existing table
(`managed = False`; migrations are not supported), create/bulk_create/filter/update/delete, nested
atomic() blocks (savepoints), .iterator() (a server-side cursor) and the introspection inspectdb
uses. Exit 0 when every check passes."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

import django  # noqa: E402
from django.conf import settings  # noqa: E402

E = C.env()
NS = E["ns"]
R = C.Runner("django")

settings.configure(
    DATABASES={"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": E["dbname"], "USER": E["user"],
        "PASSWORD": E["password"], "HOST": E["host"], "PORT": str(E["port"]),
        # Unqualified names resolve to the test's namespace.
        "OPTIONS": {"options": f"-c search_path={NS}"},
    }},
    INSTALLED_APPS=[], USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
django.setup()

from django.db import connection, models, transaction  # noqa: E402


class Note(models.Model):
    id = models.BigIntegerField(primary_key=True)
    body = models.TextField()
    qty = models.IntegerField(null=True)

    class Meta:
        app_label = "strata_clients"
        managed = False
        db_table = "notes"


def check_setup():
    with connection.cursor() as c:
        c.execute(C.drop_schema_sql(NS))
        c.execute(C.create_schema_sql(NS))
        c.execute(f"CREATE TABLE {NS}.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, qty INT)")


def check_crud():
    Note.objects.create(id=1, body="a", qty=2)
    n = len(Note.objects.bulk_create([Note(id=i, body=f"b{i}") for i in range(2, 12)]))
    C.expect(n == 10, f"bulk_create made {n}")
    ids = list(Note.objects.filter(id__gte=10).order_by("id").values_list("id", flat=True))
    C.expect(ids == [10, 11], f"filter gave {ids}")
    C.expect(Note.objects.count() == 11, f"count {Note.objects.count()}")
    C.expect(Note.objects.filter(id=1).update(body="changed") == 1, "update count")
    C.expect(Note.objects.get(id=1).body == "changed", "get after update")
    deleted = Note.objects.filter(id__gte=10).delete()[0]
    C.expect(deleted == 2, f"deleted {deleted}")


def check_nested_atomic():
    with transaction.atomic():
        Note.objects.create(id=100, body="outer")
        try:
            with transaction.atomic():
                Note.objects.create(id=101, body="inner")
                raise ValueError("roll back the inner block")
        except ValueError:
            pass
    ids = sorted(Note.objects.filter(id__gte=100).values_list("id", flat=True))
    C.expect(ids == [100], f"after the inner rollback {ids}")


def check_iterator():
    with transaction.atomic():
        got = [n.id for n in Note.objects.order_by("id").iterator(chunk_size=3)]
    C.expect(got == list(range(1, 10)) + [100], f"iterator gave {got}")


def check_introspection():
    with connection.cursor() as c:
        names = connection.introspection.table_names(c)
        C.expect(names == ["notes"], f"table_names {names}")
        desc = [(d.name, d.null_ok) for d in connection.introspection.get_table_description(c, "notes")]
        C.expect(desc == [("id", False), ("body", False), ("qty", True)], f"description {desc}")


def main():
    R.run("create_namespace_and_table", check_setup)
    R.stop_if_failed("create_namespace_and_table")
    R.run("crud", check_crud)
    R.run("nested_atomic_savepoints", check_nested_atomic)
    R.run("iterator_server_cursor", check_iterator)
    R.run("introspection", check_introspection)
    connection.close()
    R.finish()


if __name__ == "__main__":
    main()
