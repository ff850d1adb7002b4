"""Campaign stats, the campaign list with counts, the overview (zero-filled, local-time
buckets across DST) and the CSV export: all read from rollups, cached briefly."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.analytics import services
from apps.analytics.models import EventRollup
from apps.analytics.tests.factories import event, record_outcome
from apps.campaigns.models import CampaignContent


@pytest.fixture
def reported(workspace, make_sent_campaign):
    """Two contents sent (one also failed on a second run), with device events."""
    campaign, (first, second) = make_sent_campaign(workspace)
    now = timezone.now()
    record_outcome(first, "sent", now)
    record_outcome(second, "sent", now)
    record_outcome(second, "failed", now)
    n1, n2 = str(first.pk), str(second.pk)
    events = [
        *(event(f"d1-{i}", "delivered", notification_id=n1) for i in range(4)),
        *(event(f"o1-{i}", "opened", notification_id=n1) for i in range(2)),
        event("c1", "clicked", notification_id=n1),
        event("buy1", "conversion:purchase", notification_id=n1),
        event("sign1", "conversion:signup", notification_id=n1),
        event("dis2", "dismissed", notification_id=n2),
        event("camp", "opened", campaign_id=str(campaign.pk)),  # no content known
    ]
    result = services.ingest_events(workspace_id=workspace.pk, payload={"events": events})
    assert result.accepted == len(events)
    return campaign, first, second


def test_campaign_stats_per_content_with_rates(api, reported):
    campaign, first, _ = reported
    response = api.get(f"/api/v1/campaigns/{campaign.pk}/stats")
    assert response.status_code == 200
    body = response.json()
    totals = body["totals"]
    assert {k: totals[k] for k in ("sent", "failed", "delivered", "opened", "clicked")} == {
        "sent": 2, "failed": 1, "delivered": 4, "opened": 3, "clicked": 1,
    }  # fmt: skip
    assert (totals["dismissed"], totals["conversions"]) == (1, 2)
    assert totals["conversions_by_name"] == {"purchase": 1, "signup": 1}
    assert totals["rates"] == {
        "failure_rate": round(1 / 3, 4),
        "open_rate": 0.75,
        "click_rate": 0.25,
        "click_through_rate": round(1 / 3, 4),
        "dismiss_rate": 0.25,
        "conversion_rate": 0.5,
    }
    one, two = body["contents"]
    assert (one["content_id"], one["position"], one["title"]) == (
        str(first.content_id),
        0,
        "Title 0",
    )
    assert (one["opened"], one["delivered"], one["rates"]["open_rate"]) == (2, 4, 0.5)
    # Nothing delivered for the second content: device rates are null, not 0 or an error.
    assert (two["sent"], two["failed"], two["dismissed"]) == (1, 1, 0 + 1)
    assert two["rates"]["open_rate"] is None and two["rates"]["failure_rate"] == 0.5


def test_stats_of_a_campaign_without_anything_yet(api, workspace, make_sent_campaign):
    campaign, _ = make_sent_campaign(workspace, contents=1)
    body = api.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()
    assert body["totals"]["sent"] == 0 and set(body["totals"]["rates"].values()) == {None}
    assert len(body["contents"]) == 1


def test_a_deleted_content_keeps_its_counts(api, reported):
    campaign, first, _ = reported
    CampaignContent.objects.filter(pk=first.content_id).delete()
    body = api.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()
    deleted = [c for c in body["contents"] if c["deleted"]]
    assert len(deleted) == 1 and deleted[0]["opened"] == 2 and deleted[0]["title"] is None
    assert body["totals"]["opened"] == 3


def test_stats_are_cached_briefly(api, reported, workspace):
    campaign, first, _ = reported
    url = f"/api/v1/campaigns/{campaign.pk}/stats"
    assert api.get(url).json()["totals"]["opened"] == 3
    services.ingest_events(
        workspace_id=workspace.pk,
        payload={"events": [event("late", "opened", notification_id=str(first.pk))]},
    )
    assert api.get(url).json()["totals"]["opened"] == 3  # within the TTL
    cache.clear()  # the TTL ran out
    assert api.get(url).json()["totals"]["opened"] == 4


def test_stats_never_reach_the_event_table(
    api, reported, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    campaign, *_ = reported
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert api.get(f"/api/v1/campaigns/{campaign.pk}/stats").status_code == 200
        assert api.get("/api/v1/analytics/campaigns").status_code == 200
        assert api.get("/api/v1/analytics/overview").status_code == 200
    assert not [q for q in queries if "analytics_analyticsevent" in q["sql"]]


def test_stats_of_another_workspaces_campaign_are_not_found(
    reported, client_for, make_user, make_workspace
):
    campaign, *_ = reported
    stranger = make_user(email="s@b.test")
    client = client_for(stranger, make_workspace(owner=stranger, name="B"))
    for path in ("stats", "stats.csv"):
        response = client.get(f"/api/v1/campaigns/{campaign.pk}/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_csv_export(api, reported):
    campaign, _, second = reported
    campaign.contents.filter(pk=second.content_id).update(title="=HYPERLINK(evil)")
    response = api.get(f"/api/v1/campaigns/{campaign.pk}/stats.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f"campaign-{campaign.pk}-stats.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["content_position"] for row in rows] == ["0", "1", "total"]
    assert rows[0]["opened"] == "2" and rows[0]["open_rate"] == "0.5"
    assert rows[1]["title"] == "'=HYPERLINK(evil)"  # not a formula in a spreadsheet
    assert rows[1]["open_rate"] == ""
    assert rows[2]["sent"] == "2" and rows[2]["conversions"] == "2"


def test_campaign_list_with_counts(api, reported, workspace, make_sent_campaign):
    make_sent_campaign(workspace, name="Quiet")
    response = api.get("/api/v1/analytics/campaigns")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["name"] for r in results] == ["Quiet", "Launch"]  # newest first
    assert results[0]["stats"]["sent"] == 0 and results[0]["stats"]["rates"]["open_rate"] is None
    launch = results[1]["stats"]
    assert (launch["sent"], launch["failed"], launch["opened"], launch["conversions"]) == (
        2,
        1,
        3,
        2,
    )
    assert launch["rates"]["open_rate"] == 0.75
    filtered = api.get("/api/v1/analytics/campaigns?status=draft").json()
    assert filtered["count"] == 2
    assert api.get("/api/v1/analytics/campaigns?status=nope").status_code == 400


def test_dashboards_are_open_to_members(member_api, reported):
    campaign, *_ = reported
    assert member_api.get(f"/api/v1/campaigns/{campaign.pk}/stats").status_code == 200
    assert member_api.get("/api/v1/analytics/overview").status_code == 200


# --- overview -----------------------------------------------------------------------------------
def ingest_at(workspace, moments, now, event_type="opened"):
    batch = [event(f"{event_type}-{i}", event_type, at=m) for i, m in enumerate(moments)]
    services.ingest_events(workspace_id=workspace.pk, payload={"events": batch}, now=now)


def test_daily_series_follows_the_local_calendar_across_dst(api, workspace):
    """New York springs forward on 2026-03-08: that local day is 23 hours long."""
    workspace.timezone = "America/New_York"
    workspace.save()
    now = datetime(2026, 3, 12, tzinfo=UTC)
    ingest_at(
        workspace,
        [
            datetime(2026, 3, 8, 4, 59, tzinfo=UTC),  # 23:59 on the 7th (EST)
            datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # 00:00 on the 8th (EST)
            datetime(2026, 3, 9, 3, 30, tzinfo=UTC),  # 23:30 on the 8th (EDT)
            datetime(2026, 3, 9, 4, 0, tzinfo=UTC),  # 00:00 on the 9th (EDT)
        ],
        now,
    )
    body = api.get("/api/v1/analytics/overview?from=2026-03-06&to=2026-03-10&interval=day").json()
    assert body["timezone"] == "America/New_York" and body["interval"] == "day"
    series = body["series"]
    assert [p["local_start"] for p in series] == [
        "2026-03-06T00:00:00-05:00",
        "2026-03-07T00:00:00-05:00",
        "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00",
        "2026-03-10T00:00:00-04:00",
    ]
    assert [p["opened"] for p in series] == [0, 1, 2, 1, 0]  # zero-filled
    starts = [datetime.fromisoformat(p["start"].replace("Z", "+00:00")) for p in series]
    assert starts[3] - starts[2] == timedelta(hours=23)
    assert body["totals"]["opened"] == 4
    assert body["from"].startswith("2026-03-06T05:00:00") and body["to"].startswith(
        "2026-03-11T04:00:00"
    )


def test_hourly_series_has_25_hours_on_the_fall_back_day(api, workspace):
    """Paris falls back on 2026-10-25: 02:00-03:00 local happens twice."""
    now = datetime(2026, 10, 26, 12, tzinfo=UTC)
    ingest_at(
        workspace,
        [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)],
        now,
    )
    body = api.get(
        "/api/v1/analytics/overview?from=2026-10-25&to=2026-10-25&interval=hour"
        "&timezone=Europe/Paris"
    ).json()
    series = body["series"]
    assert len(series) == 25
    locals_ = [p["local_start"] for p in series]
    assert locals_[2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    assert [p["opened"] for p in series[:5]] == [0, 0, 1, 1, 0]
    assert sum(p["opened"] for p in series) == 2


def test_overview_defaults_and_errors(api, workspace):
    body = api.get("/api/v1/analytics/overview").json()
    assert body["interval"] == "day" and body["timezone"] == workspace.timezone
    assert len(body["series"]) in (7, 8)
    hourly = api.get("/api/v1/analytics/overview?interval=hour").json()
    assert len(hourly["series"]) in (24, 25)
    for query, field in [
        ("interval=week", "interval"),
        ("timezone=Mars/Olympus", "timezone"),
        ("from=yesterday", "from"),
        ("from=2026-03-10&to=2026-03-01", "from"),
        ("from=2020-01-01&to=2026-01-01&interval=hour", "from"),
        ("from=0001-01-02&to=9999-12-30&interval=hour", "from"),
        ("to=9999-12-31", "to"),
        ("from=9999-12-31", "from"),
    ]:
        response = api.get(f"/api/v1/analytics/overview?{query}")
        assert response.status_code == 400, query
        assert field in response.json()["error"]["details"], query


def test_overview_counts_sends_and_failures(api, workspace, make_sent_campaign):
    _, (first, second) = make_sent_campaign(workspace)
    record_outcome(first, "sent", timezone.now())
    record_outcome(second, "failed", timezone.now())
    body = api.get("/api/v1/analytics/overview?interval=hour").json()
    assert (body["totals"]["sent"], body["totals"]["failed"]) == (1, 1)
    assert sum(p["sent"] for p in body["series"]) == 1
    assert EventRollup.objects.filter(workspace=workspace).count() == 2
