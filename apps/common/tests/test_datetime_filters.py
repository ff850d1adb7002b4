"""Every date-time filter answers what it cannot represent with a 400 that names the
parameter the client sent: garbage, an offset no place on Earth uses, an instant beyond the
years 1 to 9999 in UTC."""

import pytest

FILTERS = [
    ("/api/v1/audit-logs", "from"),
    ("/api/v1/audit-logs", "to"),
    ("/api/v1/audit-logs", "created_from"),
    ("/api/v1/audit-logs", "created_to"),
    ("/api/v1/campaigns", "scheduled_from"),
    ("/api/v1/campaigns", "scheduled_to"),
    ("/api/v1/notifications", "sent_from"),
    ("/api/v1/notifications", "sent_to"),
    ("/api/v1/ai/generations", "created_from"),
    ("/api/v1/ai/generations", "created_to"),
]
UNREPRESENTABLE = [
    "garbage",
    "5102-11-28T18:38:29.2157+22:00",  # offset beyond +14:00
    "2026-01-01T00:00:00-15:00",
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
]


@pytest.mark.parametrize("url,param", FILTERS)
def test_an_unrepresentable_instant_is_a_400_naming_the_parameter(api, url, param):
    for value in UNREPRESENTABLE:
        response = api.get(url, {param: value})
        assert response.status_code == 400, (url, param, value, response.content)
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and list(error["details"]) == [param], value


@pytest.mark.parametrize("url,param", FILTERS)
def test_the_widest_real_offsets_are_accepted(api, url, param):
    for value in ("2026-06-01T00:00:00+14:00", "2026-06-01T00:00:00-12:00", "2026-06-01T00:00Z"):
        assert api.get(url, {param: value}).status_code == 200, (url, param, value)
