"""apps.common.postgresql reads timestamptz with psycopg's C parser: the values and their
tzinfo objects are the ones Django's own loader gives, for every shape of value."""

import psycopg
import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from apps.common.postgresql.base import C_TIMESTAMPTZ_LOADER, HAS_C_LOADER, TimestamptzLoader

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

VALUES = [
    "2026-12-01 18:56:15.549055+00",
    "2020-01-01 10:00:00.5+02",
    "2020-02-29 23:59:59.999999-09:30",
    "1970-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "9999-12-30 23:59:59.999999+00",
    "2024-03-31 02:30:00 Europe/Paris",
]
SELECT = (
    "SELECT " + ", ".join(f"'{value}'::timestamptz" for value in VALUES) + ", NULL::timestamptz"
)


def rows(use_djangos_loader: bool):
    with connection.cursor() as cursor:
        if use_djangos_loader:
            register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute(SELECT)
        return cursor.fetchone()


def test_the_c_parser_is_in_use():
    assert HAS_C_LOADER  # requirements install psycopg[binary]
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, psycopg.pq.Format.TEXT)
    assert issubclass(loader, TimestamptzLoader) and loader.timezone is connection.timezone


def test_in_djangos_zone_the_c_parser_is_called_directly():
    connection.ensure_connection()
    assert connection.connection.info.timezone is connection.timezone  # UTC, as Django sets
    loader_class = connection.connection.adapters.get_loader(1184, psycopg.pq.Format.TEXT)
    loader = loader_class(1184, connection.connection)
    assert type(loader.load.__self__) is C_TIMESTAMPTZ_LOADER  # no Python frame per value


@pytest.mark.parametrize("session_zone", ["UTC", "Asia/Kolkata"])
def test_same_values_as_djangos_loader(session_zone):
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('TimeZone', %s, true)", [session_zone])
    ours, djangos = rows(False), rows(True)
    assert ours == djangos
    assert [value and value.tzinfo for value in ours] == [
        value and value.tzinfo for value in djangos
    ]
    assert all(value is None or value.tzinfo is connection.timezone for value in ours)


def test_out_of_range_fails_alike():
    for use_djangos_loader in (False, True):
        with connection.cursor() as cursor:
            if use_djangos_loader:
                register_tzloader(connection.timezone, cursor.cursor)
            cursor.execute("SELECT 'infinity'::timestamptz")
            with pytest.raises((psycopg.DataError, DataError), match="too large"):
                cursor.fetchone()


def test_inside_prepared_statements_a_statement_is_prepared_and_generic():
    with connection.prepared_statements(), connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute("SELECT %s::int + 1 AS prepared_probe", [41])
            assert cursor.fetchone() == (42,)
    with connection.cursor() as cursor:  # Django's own cursors: never prepared
        cursor.execute("SELECT %s::int + 2 AS unprepared_probe", [40])
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)
        cursor.execute("SELECT statement, generic_plans FROM pg_prepared_statements")
        found = [
            (statement, plans) for statement, plans in cursor.fetchall() if "probe" in statement
        ]
    assert found == [("SELECT $1::int + 1 AS prepared_probe", 2)]


def test_the_option_turns_preparing_off(monkeypatch):
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "prepared_statements", False)
    assert "plan_cache_mode" not in connection.get_connection_params().get("options", "")
    with connection.prepared_statements(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 AS never_prepared_probe")
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                       ["%never_prepared_probe%"])  # fmt: skip
        assert cursor.fetchone() == (0,)


def test_a_value_that_cannot_be_sent_raises_djangos_error_even_while_logging():
    from django.test.utils import CaptureQueriesContext

    with (
        CaptureQueriesContext(connection),  # the debug cursor: it logs the composed SQL
        connection.prepared_statements(),
        pytest.raises(DataError, match="NUL"),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT %s::text", ["a\x00b"])
