"""Retention (README "Retention"): exactly the expired rows go, per workspace window, in
bounded batches; on PostgreSQL whole expired days are dropped as partitions; rollups, and so
every stat, stay as they were."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from apps.analytics.models import AnalyticsEvent, EventRollup
from apps.campaigns.services import create_campaign
from apps.common import partitions, retention
from apps.common.models import AuditLog, RetentionPolicy
from apps.notifications.models import Notification
from apps.notifications.testing import make_delivery

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only"
)
RETENTION = "/api/v1/retention"
US = timedelta(microseconds=1)


@pytest.fixture
def delivery(workspace, owner):
    campaign = create_campaign(
        workspace=workspace, actor=owner, name="Old news", topic="news",
        contents=[{"title": "Hi", "subtitle": "There"}],
    )  # fmt: skip
    return make_delivery(campaign, timezone.now() - timedelta(days=100))


def rows_at(workspace, delivery, at, tag):
    """One event, one notification and one audit row of `workspace` with time key `at`."""
    AnalyticsEvent.objects.create(workspace=workspace, event_id=tag, type="opened", occurred_at=at)
    Notification.objects.create(
        created_at=at, workspace=workspace, campaign_id=delivery.campaign_id, delivery=delivery,
        title=tag,
    )  # fmt: skip
    entry = AuditLog.objects.create(workspace=workspace, action="test.row", target_id=tag)
    AuditLog.objects.filter(pk=entry.pk).update(created_at=at)  # created_at is auto_now_add
    if connection.vendor == "postgresql":
        # The foreign keys are checked at commit; a table with checks pending cannot be
        # dropped, and the test's transaction never commits: check them now, as a commit would.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def kept(workspace) -> dict[str, set[str]]:
    return {
        "events": set(
            AnalyticsEvent.objects.filter(workspace=workspace).values_list("event_id", flat=True)
        ),
        "notifications": set(
            Notification.objects.filter(workspace=workspace).values_list("title", flat=True)
        ),
        "audit": set(
            AuditLog.objects.filter(workspace=workspace, action="test.row").values_list(
                "target_id", flat=True
            )
        ),
    }


def by_kind(reports):
    return {report.kind: report for report in reports}


def test_exactly_the_rows_before_each_cutoff_go(workspace, delivery):
    now = timezone.now()
    cut = retention.cutoffs_of(workspace.pk, now)
    assert cut["events"] == partitions.start_of_day(now) - timedelta(days=90)
    assert cut["audit"] == partitions.start_of_day(now) - timedelta(days=365)
    for kind in ("events", "notifications", "audit"):
        rows_at(workspace, delivery, cut[kind] - US, f"{kind}-expired")
        rows_at(workspace, delivery, cut[kind], f"{kind}-at-cutoff")

    for tag, at in (("system-expired", cut["audit"] - US), ("system-kept", cut["audit"])):
        entry = AuditLog.objects.create(workspace=None, action="test.system", target_id=tag)
        AuditLog.objects.filter(pk=entry.pk).update(created_at=at)  # no workspace: the default

    reports = by_kind(retention.apply(now=now))

    system = AuditLog.objects.filter(action="test.system").values_list("target_id", flat=True)
    assert list(system) == ["system-kept"]
    # Each table dropped its own expired row; the other tables' rows of that time are
    # younger than their windows (events and notifications share 90 days, audit 365).
    left = kept(workspace)
    assert (
        left["events"] == left["notifications"] == {"events-at-cutoff", "notifications-at-cutoff"}
    )
    assert left["audit"] == {
        "events-expired", "events-at-cutoff", "notifications-expired",
        "notifications-at-cutoff", "audit-at-cutoff",
    }  # fmt: skip
    # Events and notifications also lost the rows made a year ago for the audit case.
    assert {k: r.deleted for k, r in reports.items()} == {
        "events": 4, "notifications": 4, "audit": 2
    }  # fmt: skip
    assert all(r.finished for r in reports.values())
    assert EventRollup.objects.count() == 0  # nothing here was rolled up; nothing was made


def test_each_workspace_has_its_own_window_and_runs_are_bounded(
    workspace, delivery, make_workspace, owner
):
    short = workspace
    RetentionPolicy.objects.create(workspace=short, events_days=32, notifications_days=40)
    long = make_workspace(owner=owner, name="Long")
    now = timezone.now()
    old = partitions.start_of_day(now) - timedelta(days=45)
    for i in range(5):
        rows_at(short, delivery, old + timedelta(hours=i), f"s{i}")
        rows_at(long, delivery, old + timedelta(hours=i), f"l{i}")

    first = by_kind(retention.apply(now=now, max_batches=2, batch_size=2))
    assert (first["events"].deleted, first["events"].batches) == (4, 2)
    assert not first["events"].finished
    assert len(kept(short)["events"]) == 1 and len(kept(short)["notifications"]) == 1

    second = by_kind(retention.apply(now=now, max_batches=2, batch_size=2))
    assert second["events"].deleted == second["notifications"].deleted == 1
    assert second["events"].finished
    assert kept(short) == {"events": set(), "notifications": set(), "audit": kept(short)["audit"]}
    assert len(kept(short)["audit"]) == 5  # audit: the default 365 days
    assert kept(long) == {name: {f"l{i}" for i in range(5)} for name in kept(long)}


def test_the_command_reports_and_a_dry_run_changes_nothing(workspace, delivery):
    RetentionPolicy.objects.create(workspace=workspace, events_days=32)
    old = timezone.now() - timedelta(days=40)
    rows_at(workspace, delivery, old, "old")
    out = io.StringIO()
    call_command("apply_retention", "--dry-run", workspace=str(workspace.pk), stdout=out)
    assert "events: would delete 1 rows" in out.getvalue()
    assert kept(workspace)["events"] == {"old"}

    out = io.StringIO()
    call_command("apply_retention", workspace=str(workspace.pk), stdout=out)
    assert "events: deleted 1 rows" in out.getvalue()
    assert "notifications: deleted 0 rows" in out.getvalue()
    assert kept(workspace)["events"] == set() and kept(workspace)["notifications"] == {"old"}


def test_rollup_stats_do_not_change_when_raw_rows_go(api, workspace, delivery):
    """Events and notifications 45 days old (ingested then), counted in rollups; retention
    with 32-day windows removes the raw rows; stats from rollups — campaign stats and the
    overview — are identical, and stay so after rebuild_rollups."""
    from apps.analytics.services import ingest_events

    then = timezone.now() - timedelta(days=45)
    campaign = delivery.campaign
    content = campaign.contents.get()
    sent = Notification.objects.create(
        created_at=then - timedelta(hours=2), workspace=workspace, campaign=campaign,
        delivery=delivery, content=content, title="Hi", status="sent", sent_at=then,
    )  # fmt: skip
    from apps.analytics.rollups import record_notification_outcomes

    record_notification_outcomes([(workspace.pk, campaign.pk, content.pk, "sent")], then)
    events = [
        {"id": f"e{i}", "type": kind, "occurred_at": (then + timedelta(minutes=i)).isoformat(),
         "notification_id": str(sent.pk)}
        for i, kind in enumerate(["delivered", "delivered", "opened", "clicked"])
    ]  # fmt: skip
    result = ingest_events(workspace_id=workspace.pk, payload={"events": events}, now=then)
    assert result.accepted == 4

    def stats():
        cache.clear()
        campaign_stats = api.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()
        campaign_stats.pop("generated_at", None)
        window = {"from": (then - timedelta(days=1)).isoformat(),
                  "to": (then + timedelta(days=1)).isoformat(), "interval": "day",
                  "timezone": "UTC"}  # fmt: skip
        overview = api.get("/api/v1/analytics/overview", window).json()
        overview.pop("generated_at", None)
        return campaign_stats, overview

    before = stats()
    assert before[0]["totals"]["opened"] == 1 and before[0]["totals"]["sent"] == 1
    RetentionPolicy.objects.create(workspace=workspace, events_days=32, notifications_days=32)

    reports = by_kind(retention.apply())

    assert not AnalyticsEvent.objects.filter(workspace=workspace).exists()
    assert not Notification.objects.filter(workspace=workspace).exists()
    assert reports["events"].deleted + len(reports["events"].dropped) > 0
    assert stats() == before
    call_command("rebuild_rollups", workspace=str(workspace.pk), stdout=io.StringIO())
    assert stats() == before


def test_rebuild_recomputes_only_where_the_raw_rows_are_complete(workspace, delivery):
    from apps.analytics.management.commands.rebuild_rollups import rebuild
    from apps.analytics.rollups import bucket_key, increment

    since = retention.raw_complete_since(workspace.pk)
    assert since == partitions.start_of_day(timezone.now()) - timedelta(days=89)
    campaign = delivery.campaign
    old, recent = since - timedelta(hours=1), since
    for at in (old, recent):
        increment({bucket_key(workspace.pk, campaign.pk, None, "opened", at): 5})  # no raw rows
    AnalyticsEvent.objects.create(
        workspace=workspace,
        event_id="r",
        type="opened",
        occurred_at=recent,
        campaign_id=campaign.pk,
    )
    rebuild(workspace.pk)
    counts = dict(EventRollup.objects.filter(workspace=workspace).values_list("bucket", "count"))
    assert counts == {old: 5, recent: 1}  # the old bucket kept, the recent one recomputed


# --- the API ----------------------------------------------------------------------------------
def test_members_read_and_admins_set_the_windows(api, member_api, workspace):
    body = member_api.get(RETENTION).json()
    assert (body["events_days"], body["notifications_days"], body["audit_days"]) == (90, 90, 365)
    assert body["defaults"] == {"events_days": 90, "notifications_days": 90, "audit_days": 365}
    today = partitions.start_of_day(timezone.now())
    assert body["expired_before"]["audit"] == (today - timedelta(days=365)).isoformat().replace(
        "+00:00", "Z"
    )
    assert member_api.put(RETENTION, {"events_days": 40}, format="json").status_code == 403

    response = api.put(RETENTION, {"events_days": 40, "audit_days": 30}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["events_days"], response.json()["notifications_days"]) == (40, 90)
    entry = AuditLog.objects.get(workspace=workspace, action="retention_policy.updated")
    assert entry.metadata["changed"] == ["audit_days", "events_days"]
    assert entry.metadata["after"]["events_days"] == 40

    # PUT replaces: what is left out is the default again.
    assert api.put(RETENTION, {}, format="json").json()["events_days"] == 90


@pytest.mark.parametrize(
    "body, field",
    [
        ({"events_days": 31}, "events_days"),  # under EVENTS_MAX_AGE_DAYS + 2
        ({"notifications_days": 0}, "notifications_days"),
        ({"audit_days": 0}, "audit_days"),
        ({"audit_days": 3651}, "audit_days"),
        ({"events_days": "many"}, "events_days"),
        ({"events_days": 10**30}, "events_days"),
    ],
)
def test_windows_out_of_bounds_are_a_400(api, body, field):
    response = api.put(RETENTION, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]


def test_the_dispatcher_enqueues_the_periodic_run(workspace, delivery, settings):
    from apps.notifications import dispatcher

    RetentionPolicy.objects.create(workspace=workspace, events_days=32)
    rows_at(workspace, delivery, timezone.now() - timedelta(days=40), "old")
    timers = {name: float("inf") for name in ("reap", "plan", "rollups", "devices", "beat")}
    timers |= {"webhooks": float("inf"), "retention": 0.0}
    dispatcher._now_and_then(timers, "test-dispatcher")  # tests run tasks eagerly
    assert kept(workspace)["events"] == set()
    assert timers["retention"] > 0


# --- partitions (PostgreSQL) ------------------------------------------------------------------
def partition_names(table):
    return {p.name for p in partitions.partitions(table)}


def partition_of(table, where, params):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE {where}", params)
        return [row[0] for row in cursor.fetchall()]


@on_postgresql
def test_the_tables_are_partitioned_by_day_or_week(db):
    today = partitions.start_of_day(timezone.now())
    monday = today - timedelta(days=today.weekday())
    assert partitions.span_start("common_auditlog", today + timedelta(hours=5)) == monday
    assert partitions.span_start("notifications_notification", today + timedelta(hours=5)) == today
    for table in partitions.PARTITIONED:
        assert partitions.is_partitioned(table)
        names = partition_names(table)
        assert {f"{table}_before", f"{table}_default"} <= names
        assert partitions.partition_name(table, today) in names
        ahead = today + timedelta(days=settings.PARTITION_DAYS_AHEAD)
        assert partitions.partition_name(table, ahead) in names


@on_postgresql
def test_whole_expired_days_are_dropped_not_deleted(workspace, delivery, settings):
    """Sixty days from now with 32-day windows: every partition made today is wholly
    expired, so it is dropped; a row at the cutoff (in DEFAULT: no partition covers it yet)
    stays."""
    settings.RETENTION_EVENTS_DAYS = settings.RETENTION_NOTIFICATIONS_DAYS = 32
    settings.RETENTION_AUDIT_DAYS = 32
    today = partitions.start_of_day(timezone.now())
    future = today + timedelta(days=60)
    cut = future - timedelta(days=32)
    rows_at(workspace, delivery, today + timedelta(days=2, hours=3), "expired")
    rows_at(workspace, delivery, cut, "kept")
    made = {
        table: partition_names(table) - {f"{table}_default"} for table in partitions.PARTITIONED
    }
    day = partitions.partition_name("analytics_analyticsevent", today + timedelta(days=2))
    assert partition_of("analytics_analyticsevent", "event_id = %s", ["expired"]) == [day]

    reports = by_kind(retention.apply(now=future))

    for kind, table in [("events", "analytics_analyticsevent"),
                        ("notifications", "notifications_notification"),
                        ("audit", "common_auditlog")]:  # fmt: skip
        report = reports[kind]
        assert report.deleted == 0, kind  # nothing deleted row by row
        assert {f"{table}_before", partitions.partition_name(table, today)} <= made[table]
        assert set(report.dropped) == made[table]
        assert partition_names(table) == {f"{table}_default"}  # pg_inherits
    assert kept(workspace) == {"events": {"kept"}, "notifications": {"kept"}, "audit": {"kept"}}


@on_postgresql
def test_new_days_are_made_and_rows_waiting_in_default_move_in(workspace, delivery):
    today = partitions.start_of_day(timezone.now())
    late = today + timedelta(days=10, hours=5)
    rows_at(workspace, delivery, late, "late")
    table = "analytics_analyticsevent"
    assert partition_of(table, "event_id = %s", ["late"]) == [f"{table}_default"]

    created = partitions.ensure_partitions(10)

    made_by_migration = settings.PARTITION_DAYS_AHEAD
    days = [partitions.partition_name(table, today + timedelta(days=d))
            for d in range(made_by_migration + 1, 11)]  # fmt: skip
    assert created[table] == days
    assert partition_of(table, "event_id = %s", ["late"]) == [days[-1]]
    assert partition_of("notifications_notification", "title = %s", ["late"]) == [
        partitions.partition_name("notifications_notification", late)
    ]
    assert partitions.ensure_partitions(10) == {}  # nothing left to make


@on_postgresql
def test_the_conversion_keeps_rows_and_constraints_both_ways(workspace, delivery):
    """The migration's conversion, run back and forth on the live tables (rolled back with
    the test): every row survives, and the ORM inserts, updates and deletes afterwards."""
    rows_at(workspace, delivery, timezone.now() - timedelta(days=3), "before")
    for table in partitions.PARTITIONED:
        partitions.unpartition_table(table)
        assert not partitions.is_partitioned(table)
        partitions.partition_table(table)
        assert partitions.is_partitioned(table)
    assert kept(workspace) == {name: {"before"} for name in ("events", "notifications", "audit")}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
            ["notifications_notification_pkey"],
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, created_at)"
    rows_at(workspace, delivery, timezone.now(), "after")
    Notification.objects.filter(title="after").update(status="sent")
    assert Notification.objects.get(title="after").status == "sent"
    AnalyticsEvent.objects.filter(event_id="before").delete()
    assert kept(workspace)["events"] == {"after"}


def test_expiry_is_by_utc_day():
    now = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    assert retention.cutoff(90, now) == datetime(2026, 9, 2, tzinfo=UTC)
