"""apps.common.fields.JSONField reads what Django's JSONField reads: the values `json.loads`
makes of the column's text, types included, for every shape orjson treats differently."""

import json

import pytest
from django.db import connection

from apps.common.fields import JSONField
from apps.common.models import AuditLog

pytestmark = pytest.mark.django_db

TEXTS = [
    '{"k": "v", "nested": [1, {"a": null}], "ok": true, "s": "\\u00e9 \\u2028 \\ud83d\\ude00"}',
    '{"f": 0.1, "e": 1.5e-7, "z": -0.0, "max": 1.7976931348623157e308, "tiny": 1e-320}',
    '{"i64": -9223372036854775808, "u64": 18446744073709551615}',
    '{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
    '{"in_text": "1234567890123456789012", "n": 5}',  # a long digit run in a string: json
    "[]",
    '"only a string"',
    "12",
]


def stored(text: str) -> tuple:
    """(the column's text as the database gives it back, the value the field reads)."""
    entry = AuditLog.objects.create(action="x.done", metadata={})
    table, pk = AuditLog._meta.db_table, AuditLog._meta.pk.get_db_prep_value(entry.pk, connection)
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET metadata = %s{cast} WHERE id = %s", [text, pk])
        cursor.execute(f"SELECT metadata FROM {table} WHERE id = %s", [pk])
        (raw,) = cursor.fetchone()
    return raw, AuditLog.objects.get(pk=entry.pk).metadata


@pytest.mark.parametrize("text", TEXTS)
def test_the_values_and_types_of_json_loads(text):
    raw, value = stored(text)
    expected = json.loads(raw)
    assert value == expected
    assert repr(value) == repr(expected)  # 1 is not 1.0, a big integer stays exact


def test_what_orjson_refuses_is_decoded_by_json():
    infinite = "[1e400]" if connection.vendor == "sqlite" else None
    if infinite:  # PostgreSQL keeps the number exact: it comes back as 401 digits
        assert stored(infinite)[1] == [float("inf")]
    else:
        raw, value = stored("[1e400]")
        assert value == json.loads(raw) == [10**400]


def test_migrations_see_djangos_field():
    assert JSONField(default=dict).deconstruct()[1] == "django.db.models.JSONField"
