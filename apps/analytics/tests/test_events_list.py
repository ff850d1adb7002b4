"""GET /analytics/events: the raw events, newest occurred_at first, in cursor pages keyed on
(occurred_at, event_id) — the unique index's own order."""

import base64
import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.analytics.models import AnalyticsEvent

URL = "/api/v1/analytics/events"
pytestmark = pytest.mark.django_db


def events(workspace, n, *, at, prefix, **fields):
    AnalyticsEvent.objects.bulk_create(
        AnalyticsEvent(
            workspace=workspace, event_id=f"{prefix}-{i:03d}", type="opened", occurred_at=at,
            **fields,
        )
        for i in range(n)
    )  # fmt: skip
    return {f"{prefix}-{i:03d}" for i in range(n)}


def walk(api, url, *, between=lambda page: None):
    seen, link, pages = [], url, 0
    while link:
        response = api.get(link)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        seen.extend(row["id"] for row in body["results"])
        pages += 1
        between(pages)
        link = body["next"]
    return seen, pages


def test_a_walk_never_skips_or_repeats_under_inserts(api, workspace):
    instant = timezone.now() - timedelta(hours=1)
    original = events(workspace, 7, at=instant - timedelta(minutes=1), prefix="older")
    original |= events(workspace, 9, at=instant, prefix="tied")  # straddles page boundaries
    count = iter(range(100))

    def insert(page):
        # Newer events, and events sharing the instant of ones already listed.
        n = next(count)
        events(workspace, 2, at=timezone.now(), prefix=f"new{n}")
        events(workspace, 2, at=instant, prefix=f"tied-late{n}")

    seen, pages = walk(api, f"{URL}?page_size=4", between=insert)
    assert len(seen) == len(set(seen)), "an event was repeated"
    assert original <= set(seen), "an event that existed before the walk was skipped"
    assert pages >= 4
    rows = {e.event_id: e for e in AnalyticsEvent.objects.filter(event_id__in=seen)}
    keys = [(rows[i].occurred_at, i) for i in seen]
    assert keys == sorted(keys, reverse=True)


def test_filters_hold_on_every_page_and_previous_walks_back(api, workspace):
    campaign_id = uuid.uuid4()
    at = timezone.now() - timedelta(hours=2)
    mine = events(workspace, 6, at=at, prefix="c", campaign_id=campaign_id)
    events(workspace, 4, at=at, prefix="other")
    AnalyticsEvent.objects.filter(event_id="c-000").update(type="clicked")
    seen, _ = walk(api, f"{URL}?page_size=2&campaign={campaign_id}&type=opened")
    assert set(seen) == mine - {"c-000"}

    first = api.get(f"{URL}?page_size=4").json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert back["previous"] is None

    window = {"occurred_from": (at - timedelta(minutes=1)).isoformat(),
              "occurred_to": (at + timedelta(minutes=1)).isoformat()}  # fmt: skip
    assert len(api.get(URL, window).json()["results"]) == 10
    assert api.get(URL, {"occurred_to": at.isoformat()}).json()["results"] == []
    row = api.get(URL, {"page_size": 1}).json()["results"][0]
    assert set(row) == {"id", "type", "occurred_at", "notification_id", "campaign_id",
                        "content_id", "platform", "properties", "received_at"}  # fmt: skip


def test_another_workspace_sees_only_its_own_events(
    api, workspace, make_workspace, make_user, client_for
):
    events(workspace, 3, at=timezone.now(), prefix="a")
    other_owner = make_user(email="bea@b.test")
    other = make_workspace(owner=other_owner, name="B")
    b = client_for(other_owner, other)
    assert b.get(URL).json()["results"] == []
    # A cursor made in A only says where to start: in B it lists B's rows.
    cursor = api.get(f"{URL}?page_size=1").json()["next"].split("cursor=")[1].split("&")[0]
    assert b.get(f"{URL}?cursor={cursor}").json()["results"] == []


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        base64.urlsafe_b64encode(b'{"k": "yesterday", "i": "x", "b": false}').decode(),
        base64.urlsafe_b64encode(
            json.dumps({"k": "2026-01-01T00:00:00+00:00", "i": ["x"], "b": False}).encode()
        ).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"k": "2026-01-01T00:00:00+00:00", "i": "a\u0000b", "b": False}).encode()
        ).decode(),
    ],
)
def test_a_bad_cursor_is_a_400(api, cursor):
    response = api.get(f"{URL}?cursor={cursor}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "cursor" in error["details"]


def test_bad_filters_are_a_400(api):
    for query in ({"campaign": "nope"}, {"occurred_from": "soon"}):
        response = api.get(URL, query)
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_the_query_count_does_not_grow_with_the_page(api, workspace):
    events(workspace, 60, at=timezone.now(), prefix="q")
    counts = []
    for size in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            assert len(api.get(f"{URL}?page_size={size}").json()["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan")
def test_a_page_is_a_range_scan_of_the_unique_index(workspace):
    """EXPLAIN of a deep page at a realistic size (many days of many workspaces): an index
    scan of (workspace, occurred_at, event_id), no sort of the workspace's rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO analytics_analyticsevent (id, created_at, updated_at, workspace_id, "
            "event_id, type, occurred_at, platform, properties) "
            "SELECT gen_random_uuid(), now(), now(), %s, 'e' || g, 'opened', "
            "now() - (g * 20 || ' seconds')::interval, '', '{}' FROM generate_series(1, 20000) g",
            [workspace.pk],
        )
        cursor.execute("ANALYZE analytics_analyticsevent")
    page = AnalyticsEvent.objects.filter(
        workspace=workspace, occurred_at__lte=timezone.now()
    ).order_by("-occurred_at", "-event_id")[:21]
    plan = page.explain()
    # The parent's index, or its copy on each day's partition (names truncated by PostgreSQL).
    assert "Index Scan Backward using" in plan, plan
    scans = [line for line in plan.splitlines() if "Index Scan" in line]
    assert all("workspace_id_occurred_at_even" in line or "event_ws_occurred_client_id" in line
               for line in scans), plan  # fmt: skip
    assert "Sort" not in plan, plan
