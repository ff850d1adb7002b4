"""The API's renderer against DRF's JSONRenderer: the same bytes for what responses hold."""

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from ipaddress import ip_address
from zoneinfo import ZoneInfo

import pytest
from django.utils.functional import lazy
from rest_framework import renderers
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from apps.common.renderers import JSONRenderer

ours, drf = JSONRenderer(), renderers.JSONRenderer()

VALUES = [
    {"results": [], "next": None, "previous": None},
    OrderedDict([("b", 1), ("a", [1, 2.5, -0.0, True, False, None])]),
    ReturnDict({"id": "x", "nested": ReturnList([{"k": "v"}], serializer=None)}, serializer=None),
    {"text": 'Grüße, 東京 🚀 "quoted" \\ back\nline\ttab \x00 \x1f', "empty": ""},
    {"js": "before\u2028between\u2029after"},
    {
        "aware": datetime(2026, 12, 2, 9, 30, 5, 123456, tzinfo=UTC),
        "paris": datetime(2026, 12, 2, 9, 30, tzinfo=ZoneInfo("Europe/Paris")),
        "naive": datetime(2026, 12, 2, 9, 30),
        "day": date(2026, 12, 2),
        "clock": time(9, 30, 0, 500),
        "span": timedelta(hours=1, microseconds=5),
    },
    {"uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"), "money": Decimal("12.50")},
    {1: "int key", 2.5: "float key", None: "null key", False: "bool key"},
    {"ip": ip_address("192.0.2.1"), "bytes": b"raw", "lazy": lazy(lambda: "later", str)()},
    {"tuple": (1, 2), "set_like": frozenset(), "big": 2**63 - 1, "small": -(2**63)},
    {"deep": [[[[{"a": [[[]]]}]]]], "floats": [0.1, 1e16, 1.5e300, 123456789.123]},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_same_bytes_as_drf(value):
    assert ours.render(value) == drf.render(value)


def test_what_orjson_refuses_is_drfs():
    too_big = {"n": 2**64}
    assert ours.render(too_big) == drf.render(too_big) == b'{"n":18446744073709551616}'

    @dataclass
    class Point:
        x: int

    for unknown in ({"point": Point(1)}, {"object": object()}):
        with pytest.raises(TypeError):
            drf.render(unknown)
        with pytest.raises(TypeError):
            ours.render(unknown)


def test_indented_answers_and_none_are_drfs():
    value = {"a": [1, {"b": 2}]}
    for accepted in ("application/json; indent=2", "application/json; indent=8"):
        assert ours.render(value, accepted) == drf.render(value, accepted)
    assert ours.render(value, renderer_context={"indent": 4}) == drf.render(
        value, renderer_context={"indent": 4}
    )
    assert ours.render(None) == drf.render(None) == b""


def test_the_documented_differences_are_only_of_form():
    assert ours.render({"f": 1e-7}) == b'{"f":1e-7}'  # json: 1e-07, the same number
    assert ours.render({"f": float("nan")}) == b'{"f":null}'  # DRF raises ValueError
