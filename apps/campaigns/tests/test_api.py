from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import Campaign
from apps.notifications.models import Delivery, DeliveryStatus

URL = "/api/v1/campaigns"


def body(**overrides):
    data = {
        "name": "Spring sale",
        "target": {"topic": "news"},
        "contents": [{"title": "Spring is here", "subtitle": "Everything 20% off"}],
    }
    data.update(overrides)
    return data


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- CRUD -------------------------------------------------------------------------------------
def test_create_and_read(api, workspace):
    response = api.post(URL, body(description="d", priority="normal", ttl_seconds=3600))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "draft"
    assert data["allowed_transitions"] == ["cancelled", "pending_approval", "scheduled"]
    assert data["target"] == {"topic": "news"}
    assert data["contents"][0]["title"] == "Spring is here"
    assert data["timezone"] == workspace.timezone
    assert (data["priority"], data["ttl_seconds"]) == ("normal", 3600)
    assert api.get(f"{URL}/{data['id']}").json() == data


def test_members_can_write_campaigns(member_api):
    assert member_api.post(URL, body()).status_code == 201


def test_unauthenticated_and_foreign_workspace(client_for, api, make_workspace, make_user):
    campaign_id = api.post(URL, body()).json()["id"]
    assert_error(client_for(None).get(URL), 401, "NOT_AUTHENTICATED")
    stranger = make_user()
    other = client_for(stranger, make_workspace(owner=stranger))
    assert_error(other.get(f"{URL}/{campaign_id}"), 404, "NOT_FOUND")
    assert_error(other.post(f"{URL}/{campaign_id}/cancel"), 404, "NOT_FOUND")
    assert other.get(URL).json()["count"] == 0


def test_patch_and_delete(api):
    campaign_id = api.post(URL, body()).json()["id"]
    response = api.patch(
        f"{URL}/{campaign_id}",
        {"name": "New", "target": {"condition": "'a' in topics || 'b' in topics"}},
    )
    assert response.status_code == 200, response.content
    assert response.json()["target"] == {"condition": "'a' in topics || 'b' in topics"}
    assert api.put(f"{URL}/{campaign_id}", body()).status_code == 405
    assert api.delete(f"{URL}/{campaign_id}").status_code == 204
    assert_error(api.get(f"{URL}/{campaign_id}"), 404, "NOT_FOUND")
    # Its lists are gone with it; an id that is no id names no campaign either.
    for missing in (campaign_id, "not-an-id"):
        assert_error(api.get(f"{URL}/{missing}/jobs"), 404, "NOT_FOUND")
    assert_error(api.get(f"{URL}/{campaign_id}/notifications"), 404, "NOT_FOUND")


# --- bad input: 400 in the contract format, fast ----------------------------------------------
SIX_TOPICS = " && ".join(f"'t{i}' in topics" for i in range(6))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"rrule": "FREQ=SECONDLY"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=1000000000"}, "rrule"),
        ({"target": {"condition": SIX_TOPICS}}, "target"),
        ({"target": {"topic": "news", "condition": "'a' in topics"}}, "target"),
        (
            {"contents": [{"title": "t", "subtitle": "x" * 1000, "data": {"k": "v" * 3000}}]},
            "contents",
        ),
        ({"contents": [{"title": "t", "data": {"k\u0000": "v"}}]}, "contents"),  # not a 500
        ({"scheduled_at": "not a date"}, "scheduled_at"),
        ({"exclusion_dates": ["2030-02-30"]}, "exclusion_dates"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "rrule"),  # can never occur
        ({"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "scheduled_at": None}, "rrule"),
    ],
)
def test_bad_input_is_a_400(api, overrides, field):
    response = api.post(URL, body(**overrides))
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in error["details"]
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"scheduled_at": "2020-01-01T09:00:00Z"}, "scheduled_at"),
        ({"rrule": "FREQ=MINUTELY"}, "rrule"),
        ({"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}, "rrule"),
        ({"rrule": "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=31"}, "rrule"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
    ],
)
def test_bad_schedule_is_a_400(api, connected, payload, field):
    campaign_id = api.post(URL, body()).json()["id"]
    payload.setdefault("scheduled_at", iso(timezone.now() + timedelta(days=1)))
    response = api.post(f"{URL}/{campaign_id}/schedule", payload)
    assert field in assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert api.get(f"{URL}/{campaign_id}").json()["status"] == "draft"


# --- actions ----------------------------------------------------------------------------------
def test_schedule_without_firebase_is_409(api, tomorrow):
    campaign_id = api.post(URL, body(scheduled_at=iso(tomorrow))).json()["id"]
    assert_error(api.post(f"{URL}/{campaign_id}/schedule", {}), 409, "FIREBASE_NOT_CONNECTED")


def test_schedule_cancel_and_jobs(api, connected, tomorrow):
    campaign_id = api.post(URL, body()).json()["id"]
    response = api.post(
        f"{URL}/{campaign_id}/schedule",
        {"scheduled_at": iso(tomorrow), "rrule": "FREQ=DAILY;COUNT=5"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "scheduled"
    assert response.json()["next_run_at"] == iso(tomorrow)

    error = assert_error(api.post(f"{URL}/{campaign_id}/schedule", {}), 409, "INVALID_TRANSITION")
    assert error["details"] == {
        "from": "scheduled",
        "to": "scheduled",
        "allowed": ["cancelled", "completed", "draft", "failed", "running"],
    }
    error = assert_error(
        api.patch(f"{URL}/{campaign_id}", {"contents": [{"title": "x"}]}), 409, "CAMPAIGN_LOCKED"
    )
    assert error["details"]["fields"] == ["contents"]

    # The deliveries planned so far (a day ahead, and the first one beyond), latest first.
    jobs = api.get(f"{URL}/{campaign_id}/jobs").json()["results"]
    assert jobs[-1]["run_at"] == iso(tomorrow) and jobs[-1]["occurrence_at"] == iso(tomorrow)
    assert {job["status"] for job in jobs} == {"pending"} and 1 <= len(jobs) <= 2

    assert api.post(f"{URL}/{campaign_id}/cancel").json()["status"] == "cancelled"
    jobs = api.get(f"{URL}/{campaign_id}/jobs").json()["results"]
    assert {job["status"] for job in jobs} == {"cancelled"}
    assert_error(api.post(f"{URL}/{campaign_id}/cancel"), 409, "INVALID_TRANSITION")


def test_unschedule_edit_reschedule(api, connected, tomorrow):
    campaign_id = api.post(URL, body(scheduled_at=iso(tomorrow))).json()["id"]
    api.post(f"{URL}/{campaign_id}/schedule", {})
    assert api.post(f"{URL}/{campaign_id}/unschedule").json()["status"] == "draft"
    response = api.patch(f"{URL}/{campaign_id}", {"contents": [{"title": "Edited"}]})
    assert response.json()["contents"][0]["title"] == "Edited"
    assert api.post(f"{URL}/{campaign_id}/schedule", {}).json()["status"] == "scheduled"
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1


def test_duplicate(api):
    campaign_id = api.post(URL, body()).json()["id"]
    response = api.post(f"{URL}/{campaign_id}/duplicate")
    assert response.status_code == 201
    assert response.json()["name"] == "Spring sale (copy)"
    assert response.json()["id"] != campaign_id


def test_occurrences_across_a_dst_gap(api):
    # 2031-03-09 is the spring-forward day in New York; 02:30 does not exist that day.
    campaign_id = api.post(
        URL,
        body(
            scheduled_at="2031-03-08T02:30:00",
            timezone="America/New_York",
            rrule="FREQ=DAILY;COUNT=3",
        ),
    ).json()["id"]
    response = api.get(f"{URL}/{campaign_id}/occurrences", {"count": 5})
    assert response.status_code == 200
    assert response.json()["occurrences"] == [
        {"utc": "2031-03-08T07:30:00Z", "local": "2031-03-08T02:30:00-05:00"},
        {"utc": "2031-03-09T07:30:00Z", "local": "2031-03-09T03:30:00-04:00"},
        {"utc": "2031-03-10T06:30:00Z", "local": "2031-03-10T02:30:00-04:00"},
    ]


def test_occurrences_count_is_bounded(api, tomorrow):
    campaign_id = api.post(URL, body(scheduled_at=iso(tomorrow), rrule="FREQ=HOURLY")).json()["id"]
    assert (
        len(api.get(f"{URL}/{campaign_id}/occurrences", {"count": 100}).json()["occurrences"])
        == 100
    )
    assert_error(
        api.get(f"{URL}/{campaign_id}/occurrences", {"count": 101}), 400, "VALIDATION_ERROR"
    )
    assert_error(
        api.get(f"{URL}/{campaign_id}/occurrences", {"count": "x"}), 400, "VALIDATION_ERROR"
    )
    no_start = api.post(URL, body()).json()["id"]
    assert api.get(f"{URL}/{no_start}/occurrences").json()["occurrences"] == []


# --- list -------------------------------------------------------------------------------------
def test_filters_search_and_ordering(api, connected, owner, workspace, tomorrow):
    make = lambda name, **kw: services.create_campaign(  # noqa: E731
        workspace=workspace,
        actor=owner,
        name=name,
        topic="news",
        contents=[{"title": "t"}],
        **kw,
    )
    alpha = make("Alpha launch", scheduled_at=tomorrow)
    beta = make(
        "Beta digest", description="weekly launch recap", scheduled_at=tomorrow + timedelta(days=5)
    )
    make("Gamma")
    services.schedule_campaign(campaign=alpha, actor=owner)

    def names(**params):
        response = api.get(URL, params)
        assert response.status_code == 200, response.content
        return [item["name"] for item in response.json()["results"]]

    assert names(status="scheduled") == ["Alpha launch"]
    assert sorted(names(status=["draft"])) == ["Beta digest", "Gamma"]
    assert sorted(names(search="LAUNCH")) == ["Alpha launch", "Beta digest"]
    assert names(scheduled_from=iso(tomorrow + timedelta(days=1))) == ["Beta digest"]
    assert names(scheduled_to=iso(tomorrow + timedelta(days=1))) == ["Alpha launch"]
    assert names(ordering="name") == ["Alpha launch", "Beta digest", "Gamma"]
    assert names(ordering="-name") == ["Gamma", "Beta digest", "Alpha launch"]
    assert_error(api.get(URL, {"status": "lost"}), 400, "VALIDATION_ERROR")
    assert beta.status == "draft"


def test_list_query_count_does_not_depend_on_page_size(api, owner, workspace):
    for index in range(100):
        services.create_campaign(
            workspace=workspace,
            actor=owner,
            name=f"c{index}",
            topic="news",
            contents=[{"title": "a"}, {"title": "b", "data": {"k": "v"}}],
        )

    def count_queries(page_size):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(URL, {"page_size": page_size})
        assert response.status_code == 200
        results = response.json()["results"]
        assert len(results) == page_size and len(results[-1]["contents"]) == 2
        return len(queries)

    assert count_queries(10) == count_queries(100)


def test_the_catch_up_window_is_part_of_the_campaign(api):
    created = api.post(
        "/api/v1/campaigns",
        {"name": "Late ok", "target": {"topic": "news"}, "catch_up_window_seconds": None},
        format="json",
    ).json()
    assert created["catch_up_window_seconds"] is None
    default = api.post(
        "/api/v1/campaigns", {"name": "x", "target": {"topic": "news"}}, format="json"
    )
    assert default.json()["catch_up_window_seconds"] == 3600
    changed = api.patch(
        f"/api/v1/campaigns/{created['id']}", {"catch_up_window_seconds": 600}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["catch_up_window_seconds"] == 600
    bad = api.patch(
        f"/api/v1/campaigns/{created['id']}", {"catch_up_window_seconds": -1}, format="json"
    )
    assert bad.status_code == 400


def test_a_rule_that_can_never_occur_is_refused_on_patch_too(api):
    campaign_id = api.post(URL, body()).json()["id"]
    response = api.patch(f"{URL}/{campaign_id}", {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"})
    assert "rrule" in assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert api.get(f"{URL}/{campaign_id}").json()["rrule"] == ""


def test_scheduled_at_keeps_its_fraction_of_a_second(api, connected):
    at = (timezone.now() + timedelta(days=1)).replace(microsecond=250_000)
    campaign_id = api.post(URL, body(scheduled_at=at.isoformat())).json()["id"]
    scheduled = api.post(f"{URL}/{campaign_id}/schedule", {}).json()
    assert scheduled["scheduled_at"] == iso(at) and scheduled["next_run_at"] == iso(at)
