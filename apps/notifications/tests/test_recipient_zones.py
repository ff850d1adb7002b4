"""Delivery in each recipient's time zone: one delivery per zone with registered devices,
at the occurrence's wall-clock time there, to `target && <zone topic>` — judged per device
by the fake FCM's reach report."""

import contextlib
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from apps.campaigns import services as campaigns
from apps.devices import topics
from apps.devices.models import Device
from apps.devices.services import registry, sync
from apps.devices.testing import SAMPLE_ZONES
from apps.notifications.models import Delivery, Notification

pytestmark = pytest.mark.django_db

ZONES = SAMPLE_ZONES


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.DEVICE_SYNC_COALESCE_SECONDS = 0
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1000
    settings.PLAN_HORIZON_SECONDS = 5 * 24 * 3600  # the whole test's plan at once


def token(n: int) -> str:
    return f"{n:08d}:APA91b{'z' * 90}"


def register(workspace, zones, django_capture_on_commit_callbacks, per_zone=1) -> None:
    items = [
        {"token": token(n), "time_zone": zones[n % len(zones)], "language": "en",
         "platform": "android", "topics": ["news"]}
        for n in range(len(zones) * per_zone)
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        for start in range(0, len(items), 1000):
            registry.register_batch(
                workspace_id=workspace.pk, payload={"devices": items[start : start + 1000]}
            )
    settle_subscriptions(workspace)


def settle_subscriptions(workspace) -> None:
    """Until FCM holds every subscription (a sync FCM asked to wait is retried here)."""
    for _ in range(20):
        if not Device.objects.filter(workspace=workspace, needs_sync=True).exists():
            return
        Device.objects.update(sync_claim=None)  # a deferred sync's error backoff, skipped
        with contextlib.suppress(sync.RetryLater):
            sync.sync_workspace(workspace.pk)
        time.sleep(0.2)
    raise AssertionError("the devices' subscriptions did not settle")


def make(workspace, owner, *, topic="news", condition="", **fields):
    return campaigns.create_campaign(
        workspace=workspace, actor=owner, name="Good morning", topic=topic, condition=condition,
        contents=[{"title": "Good morning", "subtitle": "Coffee's on us"}],
        recipient_time_zone=True, **fields,
    )  # fmt: skip


def schedule(campaign, owner, local: str, now: datetime, rrule: str = ""):
    return campaigns.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=datetime.fromisoformat(local),
        timezone_name="UTC", rrule=rrule, now=now,
    )  # fmt: skip


def test_one_delivery_per_zone_instant_at_the_local_time(
    connected_workspace, owner, django_capture_on_commit_callbacks
):
    zones = ["Europe/Paris", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
    register(connected_workspace, zones, django_capture_on_commit_callbacks)
    campaign = make(connected_workspace, owner)
    schedule(campaign, owner, "2027-03-13T09:00:00", now=datetime(2027, 3, 12, tzinfo=UTC),
             rrule="FREQ=DAILY;COUNT=2")  # fmt: skip
    planned = {(d.run_at, d.condition) for d in Delivery.objects.filter(campaign=campaign)}
    paris_berlin = (
        "'news' in topics && ('pushpilot-tz-Europe%2FBerlin' in topics || "
        "'pushpilot-tz-Europe%2FParis' in topics)"
    )
    new_york = "'news' in topics && 'pushpilot-tz-America%2FNew_York' in topics"
    kolkata = "'news' in topics && 'pushpilot-tz-Asia%2FKolkata' in topics"
    assert planned == {
        (datetime(2027, 3, 13, 8, tzinfo=UTC), paris_berlin),  # CET: the two zones share
        (datetime(2027, 3, 14, 8, tzinfo=UTC), paris_berlin),
        (datetime(2027, 3, 13, 14, tzinfo=UTC), new_york),  # EST
        (datetime(2027, 3, 14, 13, tzinfo=UTC), new_york),  # EDT from 14 March
        (datetime(2027, 3, 13, 3, 30, tzinfo=UTC), kolkata),
        (datetime(2027, 3, 14, 3, 30, tzinfo=UTC), kolkata),
    }


def test_zones_sharing_an_instant_fill_the_room_the_target_leaves(
    connected_workspace, owner, django_capture_on_commit_callbacks
):
    zones = ["Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Rome", "Europe/Vienna"]
    register(connected_workspace, zones, django_capture_on_commit_callbacks)
    condition = "'news' in topics && ('a' in topics || 'b' in topics)"  # 3 topics: room for 2
    campaign = make(connected_workspace, owner, topic="", condition=condition)
    schedule(campaign, owner, "2027-03-13T09:00:00", now=datetime(2027, 3, 12, tzinfo=UTC))
    deliveries = list(Delivery.objects.filter(campaign=campaign).order_by("slice"))
    assert [d.slice for d in deliveries] == [
        "tz:Europe/Berlin", "tz:Europe/Paris", "tz:Europe/Vienna"
    ]  # fmt: skip
    covered = Counter(topic for d in deliveries for topic in zones_in(d.condition))
    assert covered == {topics.zone_topic(zone): 1 for zone in zones}
    assert all(d.condition.startswith(f"({condition}) && ") for d in deliveries)


def zones_in(condition: str) -> list[str]:
    from apps.integrations.firebase.validation import validate_condition

    return [t for t in validate_condition(condition) if t.startswith(topics.ZONE_PREFIX)]


def test_zones_already_past_the_catch_up_window_get_no_delivery(
    connected_workspace, owner, django_capture_on_commit_callbacks
):
    zones = ["Asia/Tokyo", "Europe/London", "America/Los_Angeles"]
    register(connected_workspace, zones, django_capture_on_commit_callbacks)
    campaign = make(connected_workspace, owner, catch_up_window_seconds=1800)
    # 09:00 in London: Tokyo's 09:00 (00:00Z) is long past, Los Angeles' (17:00Z) is ahead.
    schedule(campaign, owner, "2027-01-10T09:00:00", now=datetime(2027, 1, 10, 8, tzinfo=UTC))
    planned = {d.slice: d.run_at for d in Delivery.objects.filter(campaign=campaign)}
    assert planned == {
        "tz:Europe/London": datetime(2027, 1, 10, 9, tzinfo=UTC),
        "tz:America/Los_Angeles": datetime(2027, 1, 10, 17, tzinfo=UTC),
    }


def test_without_registered_devices_it_is_sent_at_its_own_instant(connected_workspace, owner):
    campaign = make(connected_workspace, owner)
    schedule(campaign, owner, "2027-01-10T09:00:00", now=datetime(2027, 1, 9, tzinfo=UTC))
    (delivery,) = Delivery.objects.filter(campaign=campaign)
    assert (delivery.topic, delivery.run_at) == ("news", datetime(2027, 1, 10, 9, tzinfo=UTC))


@pytest.mark.parametrize(
    "target,field",
    [
        ({"condition": " && ".join(f"'t{i}' in topics" for i in range(5))}, "recipient_time_zone"),
        ({"topic": "pushpilot-tz-Europe%2FParis"}, "recipient_time_zone"),
    ],
)
def test_targets_without_room_for_a_zone_are_refused(api, target, field):
    response = api.post(
        "/api/v1/campaigns",
        {"name": "x", "target": target, "recipient_time_zone": True,
         "contents": [{"title": "t", "subtitle": "s"}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]) == [field]


def test_a_four_topic_target_is_accepted(api):
    condition = " && ".join(f"'t{i}' in topics" for i in range(4))
    response = api.post(
        "/api/v1/campaigns",
        {"name": "x", "target": {"condition": condition}, "recipient_time_zone": True,
         "contents": [{"title": "t", "subtitle": "s"}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["recipient_time_zone"] is True


def test_every_device_gets_it_once_a_day_at_nine_local_across_a_dst_change(
    connected_workspace, owner, fake_fcm, demo_account, run_due, django_capture_on_commit_callbacks
):
    register(connected_workspace, ZONES, django_capture_on_commit_callbacks, per_zone=34)
    devices = {token(n): ZONES[n % len(ZONES)] for n in range(len(ZONES) * 34)}
    assert len(devices) == 1020
    campaign = make(connected_workspace, owner)
    # 13-15 March 2027: the US moves its clocks on the 14th (Europe on the 28th).
    schedule(campaign, owner, "2027-03-13T09:00:00", now=datetime(2027, 3, 12, tzinfo=UTC),
             rrule="FREQ=DAILY;COUNT=3")  # fmt: skip
    for run_at in sorted(
        set(Delivery.objects.filter(campaign=campaign).values_list("run_at", flat=True))
    ):
        run_due(run_at)
    campaign.refresh_from_db()
    assert campaign.status == "completed"

    sent_at = {
        str(pk): run_at
        for pk, run_at in Notification.objects.filter(campaign=campaign).values_list(
            "pk", "delivery__run_at"
        )
    }
    received: dict[str, list[datetime]] = defaultdict(list)
    for message in fake_fcm.messages(demo_account["project_id"]):
        at = sent_at[message["message"]["data"]["pushpilot_notification_id"]]
        for reached in message["reached"]:
            received[reached].append(at)
    assert set(received) == set(devices)
    for device, zone in devices.items():
        local = sorted(at.astimezone(ZoneInfo(zone)) for at in received[device])
        assert [(t.date().isoformat(), t.hour, t.minute) for t in local] == [
            ("2027-03-13", 9, 0), ("2027-03-14", 9, 0), ("2027-03-15", 9, 0)
        ], (device, zone)  # fmt: skip


def test_a_zone_registered_after_planning_gets_the_occurrences_still_to_come(
    connected_workspace, owner, fake_fcm, demo_account, run_due, django_capture_on_commit_callbacks
):
    from apps.notifications import planning

    register(connected_workspace, ["Europe/Paris"], django_capture_on_commit_callbacks)
    campaign = make(connected_workspace, owner)
    schedule(campaign, owner, "2027-03-13T09:00:00", now=datetime(2027, 3, 12, tzinfo=UTC),
             rrule="FREQ=DAILY;COUNT=2")  # fmt: skip
    late_device = {"token": token(999), "time_zone": "Asia/Tokyo", "language": "en",
                   "platform": "ios", "topics": ["news"]}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        registry.register_one(workspace_id=connected_workspace.pk, payload=late_device)
    # The planner's next round, on the first day after Tokyo's 09:00 (00:00Z): that one is
    # past the catch-up window, the second day's is still to come.
    planning.refill(now=datetime(2027, 3, 13, 2, tzinfo=UTC))
    tokyo = Delivery.objects.filter(campaign=campaign, slice="tz:Asia/Tokyo")
    assert list(tokyo.values_list("run_at", flat=True)) == [datetime(2027, 3, 14, 0, tzinfo=UTC)]
    planning.refill(now=datetime(2027, 3, 13, 2, tzinfo=UTC))
    assert tokyo.count() == 1  # covered now: nothing added twice
    for run_at in sorted(
        set(Delivery.objects.filter(campaign=campaign).values_list("run_at", flat=True))
    ):
        run_due(run_at)
    reach = fake_fcm.reach(demo_account["project_id"])
    assert len(reach[token(999)]) == 1 and len(reach[token(0)]) == 2


def test_the_preview_lists_what_is_planned_and_what_will_be(
    api, connected_workspace, owner, settings, django_capture_on_commit_callbacks
):
    register(
        connected_workspace, ["Europe/Paris", "Asia/Tokyo"], django_capture_on_commit_callbacks
    )
    campaign = make(connected_workspace, owner)
    url = f"/api/v1/campaigns/{campaign.pk}/deliveries"
    window = {"from": "2027-03-13T00:00:00Z", "to": "2027-03-16T00:00:00Z"}
    settings.PLAN_HORIZON_SECONDS = 24 * 3600
    campaigns.update_campaign(
        campaign=campaign, actor=owner, scheduled_at=datetime(2027, 3, 13, 9),
        timezone="UTC", rrule="FREQ=DAILY;COUNT=3",
    )  # fmt: skip
    draft = api.get(url, window)
    assert draft.status_code == 200, draft.content
    assert {row["status"] for row in draft.json()["deliveries"]} == {"unplanned"}

    schedule(campaign, owner, "2027-03-13T09:00:00", now=datetime(2027, 3, 12, 12, tzinfo=UTC),
             rrule="FREQ=DAILY;COUNT=3")  # fmt: skip
    rows = api.get(url, window).json()["deliveries"]
    assert len(rows) == 6  # 3 days x 2 zones
    for row in rows:
        assert row["run_at_local"][11:16] == "09:00", row
        assert len(row["zones"]) == 1
        assert row["audience_estimate"]["devices"] == 1
    stored = {(d.run_at, d.condition) for d in Delivery.objects.filter(campaign=campaign)}
    listed_planned = {
        (datetime.fromisoformat(row["run_at"]), row["target"]["condition"])
        for row in rows
        if row["status"] == "pending"
    }
    assert listed_planned == stored  # what is planned is listed as stored
    assert {row["status"] for row in rows} == {"pending", "unplanned"}  # the rest: to come
    # What the planner later makes of the unplanned ones is what the preview said.
    unplanned = {(datetime.fromisoformat(r["run_at"]), r["target"]["condition"])
                 for r in rows if r["status"] == "unplanned"}  # fmt: skip
    settings.PLAN_HORIZON_SECONDS = 5 * 24 * 3600
    from apps.notifications import planning

    planning.refill(now=datetime(2027, 3, 12, 12, tzinfo=UTC))
    assert {(d.run_at, d.condition) for d in Delivery.objects.filter(campaign=campaign)} == (
        stored | unplanned
    )
    assert (
        api.get(url, {"from": "2027-03-13T00:00:00Z", "to": "2027-03-12T00:00:00Z"}).status_code
        == 400
    )


def test_daily_at_nine_local_in_each_recipients_language_across_a_dst_change(
    connected_workspace, owner, fake_fcm, demo_account, run_due, django_capture_on_commit_callbacks
):
    from apps.workspaces import services as workspaces

    workspaces.update_workspace(
        workspace=connected_workspace, actor=owner, languages=["en", "pt-BR", "de", "ja"]
    )
    languages = ["en-US", "pt-BR", "de-DE", "ja"]
    titles = {"en": "Good morning", "pt-BR": "Bom dia", "de": "Guten Morgen", "ja": "おはよう"}
    items = [
        {"token": token(n), "time_zone": ZONES[n % 30], "language": languages[(n // 30) % 4],
         "platform": "android", "topics": ["news"]}
        for n in range(1000)
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        registry.register_batch(workspace_id=connected_workspace.pk, payload={"devices": items})
    settle_subscriptions(connected_workspace)
    campaign = campaigns.create_campaign(
        workspace=connected_workspace, actor=owner, name="Good morning", topic="news",
        contents=[{"title": "Good morning", "subtitle": "Coffee's on us",
                   "translations": {tag: {"title": title, "subtitle": "…"}
                                    for tag, title in titles.items() if tag != "en"}}],
        recipient_time_zone=True,
    )  # fmt: skip
    schedule(campaign, owner, "2027-03-13T09:00:00", now=datetime(2027, 3, 12, tzinfo=UTC),
             rrule="FREQ=DAILY;COUNT=3")  # fmt: skip
    for run_at in sorted(
        set(Delivery.objects.filter(campaign=campaign).values_list("run_at", flat=True))
    ):
        run_due(run_at)
    sent_at = dict(
        Notification.objects.filter(campaign=campaign).values_list("pk", "delivery__run_at")
    )
    received: dict[str, list[tuple]] = defaultdict(list)
    for message in fake_fcm.messages(demo_account["project_id"]):
        at = sent_at[uuid.UUID(message["message"]["data"]["pushpilot_notification_id"])]
        for reached in message["reached"]:
            received[reached].append((at, message["message"]["notification"]["title"]))
    assert len(received) == 1000
    for item in items:
        zone, want = (
            ZoneInfo(item["time_zone"]),
            titles[{"en-US": "en", "de-DE": "de"}.get(item["language"], item["language"])],
        )
        got = sorted((at.astimezone(zone), title) for at, title in received[item["token"]])
        assert [(t.date().isoformat(), t.hour, t.minute, title) for t, title in got] == [
            (day, 9, 0, want) for day in ("2027-03-13", "2027-03-14", "2027-03-15")
        ], item  # fmt: skip
