"""Cursor pages (apps/common/pagination.py) over real rows: full walks with rows inserted
between page reads, bad cursors, tenancy, the deprecated `?page=`."""

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from apps.common.models import AuditLog
from apps.common.pagination import CursorPagination
from apps.common.partitions import enabled as partitions_enabled
from apps.notifications.models import Delivery, Notification

pytestmark = pytest.mark.django_db


def walk(api, url, *, between=lambda page: None):
    """Follow `next` links to the end; `between(n)` runs after the n-th page is read."""
    seen, pages, link = [], 0, url
    while link:
        response = api.get(link)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}  # no count: no COUNT(*)
        seen.extend(row["id"] for row in body["results"])
        pages += 1
        between(pages)
        link = body["next"]
    return seen, pages


def notifications(campaign, delivery, n, *, at=None):
    rows = Notification.objects.bulk_create(
        Notification(
            workspace_id=campaign.workspace_id,
            campaign=campaign,
            delivery=delivery,
            content=None,
            position=i,
            title=f"t{i}",
        )
        for i in range(n)
    )
    if at is not None:  # several rows of one instant: only the id orders them
        Notification.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=at)
    return [str(r.pk) for r in rows]


def audit_rows(workspace, n, *, at=None):
    rows = AuditLog.objects.bulk_create(
        AuditLog(workspace=workspace, action="test.row", target_type="t", target_id=str(i))
        for i in range(n)
    )
    if at is not None:
        AuditLog.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=at)
    return [str(r.pk) for r in rows]


@pytest.mark.parametrize("route", ["/api/v1/notifications", "campaign"])
def test_a_walk_over_notifications_never_skips_or_repeats_under_inserts(api, scheduled, route):
    campaign, delivery = scheduled(contents=1)
    url = route if route != "campaign" else f"/api/v1/campaigns/{campaign.pk}/notifications"
    instant = timezone.now() - timedelta(hours=1)
    older = notifications(campaign, delivery, 7, at=instant - timedelta(minutes=1))
    tied = notifications(campaign, delivery, 9, at=instant)  # straddles page boundaries
    original = set(older) | set(tied)
    inserted = []

    def insert(page):
        # Newer rows, and rows sharing the instant of rows already listed.
        inserted.extend(notifications(campaign, delivery, 2))
        inserted.extend(notifications(campaign, delivery, 2, at=instant))

    seen, pages = walk(api, f"{url}?page_size=4", between=insert)
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert original <= set(seen), "a row that existed before the walk was skipped"
    assert pages >= 4
    # The walk's order is the cursor's order: newest first, id breaking ties.
    rows = {str(pk): row for pk, row in Notification.objects.in_bulk(seen).items()}
    keys = [(rows[pk].created_at, str(rows[pk].pk)) for pk in seen]
    assert keys == sorted(keys, reverse=True)


def test_a_walk_over_the_audit_log_never_skips_or_repeats_under_inserts(api, workspace):
    instant = timezone.now() - timedelta(hours=1)
    before = set(audit_rows(workspace, 11, at=instant))
    before |= set(audit_rows(workspace, 5, at=instant - timedelta(seconds=1)))
    before |= {
        str(pk) for pk in AuditLog.objects.filter(workspace=workspace).values_list("pk", flat=True)
    }

    def insert(page):
        audit_rows(workspace, 3)
        audit_rows(workspace, 3, at=instant)

    seen, _ = walk(api, "/api/v1/audit-logs?page_size=5&action=test.row", between=insert)
    assert len(seen) == len(set(seen))
    test_rows = set(
        str(pk)
        for pk in AuditLog.objects.filter(pk__in=before, action="test.row").values_list(
            "pk", flat=True
        )
    )
    assert test_rows <= set(seen)
    assert all(
        action == "test.row"
        for action in AuditLog.objects.filter(pk__in=seen).values_list("action", flat=True)
    ), "the filter was lost on a later page"


def walk_back(api, link):
    """Follow `previous` links to the first page; the rows in list order (newest first)."""
    pages = []
    while link:
        body = api.get(link).json()
        pages.insert(0, [row["id"] for row in body["results"]])
        link = body["previous"]
    return [pk for page in pages for pk in page]


@pytest.mark.parametrize("days_ago", [[0, 3, 30], [2, 9, 200], [40]])
def test_walks_read_rows_of_every_age_in_order(api, scheduled, workspace, days_ago):
    # On PostgreSQL a page is read one time window after the other (partitions.windows:
    # the current day/week, the next seven, the rest): rows in some windows and none in
    # others must come out whole and in order, forwards and back.
    campaign, delivery = scheduled(contents=1)
    now = timezone.now()
    made = {"notifications": [], "audit": []}
    for days in days_ago:
        at = now - timedelta(days=days, minutes=5)
        made["notifications"] += notifications(campaign, delivery, 3, at=at)
        made["audit"] += audit_rows(workspace, 3, at=at)
    made["campaign"] = made["notifications"]  # read in sparse windows (cursor_sparse)
    for kind, url in (
        ("notifications", "/api/v1/notifications?page_size=2"),
        ("campaign", f"/api/v1/campaigns/{campaign.pk}/notifications?page_size=2"),
        ("audit", "/api/v1/audit-logs?page_size=2&action=test.row"),
    ):
        model = AuditLog if kind == "audit" else Notification
        rows = model.objects.in_bulk(made[kind])
        expected = [
            str(row.pk)
            for row in sorted(rows.values(), key=lambda r: (r.created_at, r.pk), reverse=True)
        ]
        seen, _ = walk(api, url)
        assert seen == expected, kind
        last = api.get(url).json()
        while last["next"]:
            last = api.get(last["next"]).json()
        back = walk_back(api, last["previous"]) + [row["id"] for row in last["results"]]
        assert back == expected, kind


@pytest.mark.skipif(not partitions_enabled(), reason="partitions are PostgreSQL's")
def test_a_first_page_filled_by_todays_rows_plans_only_the_newest_partitions(
    api, scheduled, workspace
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    campaign, delivery = scheduled(contents=1)
    notifications(campaign, delivery, 6)
    with CaptureQueriesContext(connection) as queries:
        body = api.get("/api/v1/notifications?page_size=5").json()
    assert len(body["results"]) == 5
    listing = [q["sql"] for q in queries if 'FROM "notifications_notification"' in q["sql"]]
    assert len(listing) == 1  # the first window held the whole page
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {listing[0]}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "notifications_notification_p" in plan
    assert "notifications_notification_before" not in plan, plan


@pytest.mark.skipif(not partitions_enabled(), reason="partitions are PostgreSQL's")
def test_a_campaigns_first_page_reads_the_near_days_in_one_statement(api, scheduled):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    campaign, delivery = scheduled(contents=1)
    notifications(campaign, delivery, 3, at=timezone.now() - timedelta(days=3))
    notifications(campaign, delivery, 3)
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"/api/v1/campaigns/{campaign.pk}/notifications?page_size=5").json()
    assert len(body["results"]) == 5
    listing = [q["sql"] for q in queries if 'FROM "notifications_notification"' in q["sql"]]
    assert len(listing) == 1  # today and three days ago: one window, not two
    with CaptureQueriesContext(connection) as queries:
        api.get("/api/v1/notifications?page_size=5")
    assert len([q for q in queries if 'FROM "notifications_notification"' in q["sql"]]) == 2


def prepared_page_statements():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ['%FROM "notifications_notification"%'],
        )
        return cursor.fetchall()


@pytest.mark.skipif(not partitions_enabled(), reason="partitions are PostgreSQL's")
def test_a_page_is_planned_once_a_session_and_sees_a_partition_made_since(api, scheduled):
    from apps.common import partitions

    campaign, delivery = scheduled(contents=1)
    notifications(campaign, delivery, 3)
    url = f"/api/v1/campaigns/{campaign.pk}/notifications?page_size=5"
    newest_first = list(
        Notification.objects.order_by("-created_at", "-id").values_list("id", flat=True)
    )
    for _ in range(3):
        assert [r["id"] for r in api.get(url).json()["results"]] == [str(i) for i in newest_first]
    # Both windows' statements (the near days held 3 rows of 5): planned once, generic.
    assert prepared_page_statements() == [(3, 0), (3, 0)]
    # A day beyond every partition: ATTACH PARTITION makes PostgreSQL plan it again.
    later = timezone.now() + timedelta(days=settings_days_ahead() + 5)
    partitions.ensure_partitions(settings_days_ahead() + 6)
    newer = notifications(campaign, delivery, 2, at=later)
    assert partitions.partition_name("notifications_notification", later) in [
        p.name for p in partitions.partitions("notifications_notification")
    ]
    ids = [r["id"] for r in api.get(url).json()["results"]]
    assert ids == sorted(newer, reverse=True) + [str(i) for i in newest_first]


@pytest.mark.skipif(not partitions_enabled(), reason="partitions are PostgreSQL's")
def test_a_rolled_back_transaction_keeps_the_prepared_page(api, scheduled):
    from django.db import transaction

    campaign, delivery = scheduled(contents=1)
    ids = set(notifications(campaign, delivery, 2))
    url = f"/api/v1/campaigns/{campaign.pk}/notifications"
    with pytest.raises(RuntimeError), transaction.atomic():
        assert api.get(url).status_code == 200  # prepared inside: not undone by a rollback
        raise RuntimeError
    assert {r["id"] for r in api.get(url).json()["results"]} == ids
    assert [custom for _generic, custom in prepared_page_statements()] == [0, 0]


def settings_days_ahead() -> int:
    from django.conf import settings

    return settings.PARTITION_DAYS_AHEAD


def test_a_campaigns_rows_are_shown_only_while_it_is_the_workspaces_and_live(
    api, scheduled, client_for, make_user, make_workspace
):
    # The page's own statement checks the campaign (of_live_campaign); only an empty page
    # asks whether it exists. Rows of a campaign deleted or of another workspace: a 404.
    campaign, delivery = scheduled(contents=1)
    notifications(campaign, delivery, 3)
    urls = [f"/api/v1/campaigns/{campaign.pk}/{kind}" for kind in ("notifications", "jobs")]
    assert [len(api.get(url).json()["results"]) for url in urls] == [3, 1]
    assert [len(api.get(f"{url}?page=1").json()["results"]) for url in urls] == [3, 1]

    stranger = make_user()
    other = client_for(stranger, make_workspace(owner=stranger))
    assert [other.get(url).status_code for url in urls] == [404, 404]

    assert api.post(f"/api/v1/campaigns/{campaign.pk}/cancel").status_code == 200
    assert api.get(urls[1]).json()["results"]  # cancelled, not deleted: still listed
    assert api.delete(f"/api/v1/campaigns/{campaign.pk}").status_code == 204
    for url in urls:
        response = api.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_a_live_campaign_without_rows_is_an_empty_page(api, scheduled):
    campaign, _ = scheduled(contents=1)
    Delivery.objects.filter(campaign=campaign).delete()
    for kind in ("notifications", "jobs"):
        response = api.get(f"/api/v1/campaigns/{campaign.pk}/{kind}")
        assert response.status_code == 200
        assert response.json()["results"] == []


def test_previous_links_walk_back_to_the_first_page(api, workspace):
    audit_rows(workspace, 12, at=timezone.now() - timedelta(hours=1))
    url = "/api/v1/audit-logs?page_size=5&action=test.row"
    first = api.get(url).json()
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()
    assert third["next"] is None and len(third["results"]) == 2
    back = api.get(third["previous"]).json()
    assert back["results"] == second["results"]
    assert api.get(back["previous"]).json()["results"] == first["results"]
    assert api.get(back["previous"]).json()["previous"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "x",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"k": "yesterday", "i": "x", "b": false}').decode(),
        base64.urlsafe_b64encode(
            b'{"k": "2026-01-01T00:00:00", "i": "' + b"0" * 32 + b'", "b": false}'
        ).decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "\u00e9t\u00e9",
    ],
)
@pytest.mark.parametrize(
    "url",
    ["/api/v1/notifications", "/api/v1/audit-logs", "/api/v1/audience/devices"],
)
def test_a_bad_cursor_is_a_400_naming_cursor(api, url, cursor):
    response = api.get(url, {"cursor": cursor})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "cursor" in error["details"]


def test_a_cursor_of_another_workspace_shows_nothing_of_it(
    api, client_for, owner, make_workspace, workspace
):
    other = make_workspace(owner=owner, name="Other")
    audit_rows(other, 6, at=timezone.now() - timedelta(hours=1))
    other_api = client_for(owner, other)
    page = other_api.get("/api/v1/audit-logs?page_size=2&action=test.row").json()
    theirs = set(AuditLog.objects.filter(workspace=other).values_list("pk", flat=True))
    # The same cursor in workspace A: only A's rows (none of this action), never B's.
    mine = api.get(page["next"].replace("http://testserver", "")).json()
    assert mine["results"] == []
    cursor = parse_qs(urlsplit(page["next"]).query)["cursor"][0]
    everything = api.get("/api/v1/audit-logs", {"cursor": cursor})
    assert not {row["id"] for row in everything.json()["results"]} & {str(pk) for pk in theirs}


def test_page_numbers_still_answer_for_the_deprecation_period(api, workspace):
    audit_rows(workspace, 7, at=timezone.now() - timedelta(hours=1))
    response = api.get("/api/v1/audit-logs?page=2&page_size=5&action=test.row")
    assert response.status_code == 200
    assert response["Deprecation"] == "true"
    body = response.json()
    assert body["count"] == 7 and len(body["results"]) == 2
    assert "count" not in api.get("/api/v1/audit-logs?action=test.row").json()


def test_page_size_is_clamped_like_page_numbers(api, workspace):
    audit_rows(workspace, 105, at=timezone.now() - timedelta(hours=1))
    assert len(api.get("/api/v1/audit-logs?page_size=500").json()["results"]) == 100
    assert len(api.get("/api/v1/audit-logs?page_size=0").json()["results"]) == 20
    assert len(api.get("/api/v1/audit-logs?page_size=x").json()["results"]) == 20


def test_the_cursor_round_trips():
    now = timezone.now()
    pk = "5b1f8f52-6c39-4a6e-9a29-6d8e2f0b1c11"
    backwards, (value, got) = CursorPagination.decode(CursorPagination.encode(now, pk, True))
    assert backwards is True and value == now and str(got) == pk


def devices(workspace, n):
    from apps.devices.models import Device

    now = timezone.now()
    Device.objects.bulk_create(
        Device(
            workspace=workspace,
            token_digest=f"{i:064d}",
            encrypted_token="x",
            token_prefix="x",
            platform="android",
            time_zone="UTC",
            language="en",
            bucket=0,
            last_seen_at=now,
        )
        for i in range(n)
    )


def count_queries(api, url, page_size, **params):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = api.get(url, {"page_size": page_size, **params})
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == page_size
    return len(queries)


def test_no_cursor_list_costs_more_queries_for_a_bigger_page(api, scheduled, workspace, settings):
    from apps.notifications.dispatcher import refill_plans

    settings.PLAN_HORIZON_SECONDS = 90 * 86400
    campaign, delivery = scheduled(contents=1, rrule="FREQ=DAILY;COUNT=60")
    for _ in range(20):
        refill_plans(now=timezone.now())
    notifications(campaign, delivery, 60)
    audit_rows(workspace, 60)
    devices(workspace, 60)
    for url in (
        "/api/v1/notifications",
        f"/api/v1/campaigns/{campaign.pk}/notifications",
        f"/api/v1/campaigns/{campaign.pk}/jobs",
        "/api/v1/audit-logs",
        "/api/v1/audience/devices",
    ):
        small = count_queries(api, url, 5)
        assert small == count_queries(api, url, 50), url
        link = api.get(url, {"page_size": 5}).json()["next"]
        cursor = parse_qs(urlsplit(link).query)["cursor"][0]
        assert small == count_queries(api, url, 5, cursor=cursor), url


def rows_of_walk(api, url):
    """Every row of a walk (follow `next`), then of the walk back from its last page."""
    rows, body = [], api.get(url).json()
    rows.extend(body["results"])
    while body["next"]:
        body = api.get(body["next"]).json()
        rows.extend(body["results"])
    back = list(body["results"])
    while body["previous"]:
        body = api.get(body["previous"]).json()
        back[:0] = body["results"]
    return rows, back


def rows_of_page_numbers(api, url):
    rows, page = [], 1
    while True:
        body = api.get(f"{url}&page={page}").json()
        rows.extend(body["results"])
        if not body["next"]:
            return rows
        page += 1


def test_a_campaigns_compiled_pages_are_the_querysets_pages(api, scheduled, settings):
    # Without filters a campaign's notifications and jobs come from statements compiled once
    # per connection (compiled.CompiledPage); with a filter (that keeps every row) or the
    # deprecated page numbers, from the queryset. Forwards and back, row for row alike.
    from apps.notifications.dispatcher import refill_plans

    settings.PLAN_HORIZON_SECONDS = 40 * 86400
    campaign, delivery = scheduled(contents=1, rrule="FREQ=DAILY;COUNT=30")
    for _ in range(10):
        refill_plans(now=timezone.now())
    now = timezone.now()
    for days in (0, 0, 2, 9, 40):  # sparse windows: near days and older ones
        notifications(campaign, delivery, 3, at=now - timedelta(days=days, minutes=5))
    base = f"/api/v1/campaigns/{campaign.pk}"
    every_status = "&".join(f"status={s}" for s in ("pending", "sending", "sent", "failed"))

    walked, back = rows_of_walk(api, f"{base}/notifications?page_size=4")
    assert len(walked) == 15 and back == walked
    assert rows_of_walk(api, f"{base}/notifications?page_size=4&{every_status}")[0] == walked
    assert rows_of_page_numbers(api, f"{base}/notifications?page_size=4") == walked

    jobs, back = rows_of_walk(api, f"{base}/jobs?page_size=4")
    assert len(jobs) == Delivery.objects.filter(campaign=campaign).count() > 8
    assert back == jobs
    assert rows_of_page_numbers(api, f"{base}/jobs?page_size=4") == jobs
    keys = [(row["run_at"], row["id"]) for row in jobs]
    assert keys == sorted(keys, reverse=True)


def test_a_campaigns_page_checks_the_campaign_in_its_own_statement(api, scheduled, monkeypatch):
    # The page's statement is compiled once per connection and shape, and it checks the
    # campaign itself (EXISTS): no separate query for it while there are rows.
    from django.db import connection
    from django.db.models.sql.compiler import SQLCompiler
    from django.test.utils import CaptureQueriesContext

    campaign, delivery = scheduled(contents=1)
    notifications(campaign, delivery, 3)
    urls = [f"/api/v1/campaigns/{campaign.pk}/{kind}" for kind in ("notifications", "jobs")]
    for url in urls:
        assert api.get(url).status_code == 200  # compiled here
    compiled = []
    as_sql = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler,
        "as_sql",
        lambda self, *a, **k: compiled.append(self.query.model) or as_sql(self, *a, **k),
    )
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(url).json()["results"]
        about_campaigns = [q["sql"] for q in queries if '"campaigns_campaign"' in q["sql"]]
        assert about_campaigns, url  # a page statement for each time window it read:
        assert all("EXISTS" in sql and " LIMIT " in sql for sql in about_campaigns), url
    assert Notification not in compiled and Delivery not in compiled


def test_a_campaigns_pages_with_an_id_that_is_no_uuid_are_a_404(api):
    # The notifications route takes a UUID; the jobs route (the campaign's detail route)
    # any text.
    assert api.get("/api/v1/campaigns/not-a-uuid/jobs").status_code == 404


def test_a_workspaces_compiled_pages_are_the_querysets_pages(api, scheduled, workspace):
    # The workspace-wide lists without filters read compiled statements
    # (tenancy.CompiledWorkspaceListMixin); the deprecated page numbers read the queryset.
    # Rows of several ages, some sharing an instant (the tie-breaker orders them: an id, or
    # the events' text event_id).
    from apps.analytics.models import AnalyticsEvent

    campaign, delivery = scheduled(contents=1)
    now = timezone.now()
    for n, days in enumerate((0, 0, 3, 30)):
        at = now - timedelta(days=days, minutes=5)
        notifications(campaign, delivery, 3, at=at)
        audit_rows(workspace, 3, at=at)
        AnalyticsEvent.objects.bulk_create(
            AnalyticsEvent(workspace=workspace, event_id=f"e{n}-{i}", type="opened", occurred_at=at)
            for i in range(3)
        )
    devices(workspace, 7)
    for url in (
        "/api/v1/notifications?page_size=4",
        "/api/v1/audit-logs?page_size=4",
        "/api/v1/analytics/events?page_size=4",
        "/api/v1/audience/devices?page_size=4",
    ):
        walked, back = rows_of_walk(api, url)
        assert len(walked) >= 7 and back == walked, url
        assert rows_of_page_numbers(api, url) == walked, url


def test_a_compiled_workspace_list_refuses_rows_that_read_the_request():
    from apps.notifications.api import NotificationViewSet

    class ReadsTheRequest(NotificationViewSet):
        def refine_queryset(self, queryset):
            return queryset.filter(campaign_id=self.request.query_params["campaign"])

    with pytest.raises(AttributeError):
        ReadsTheRequest._workspace_page().model  # noqa: B018 (builds the rows once)
