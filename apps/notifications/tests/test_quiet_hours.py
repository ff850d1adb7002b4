"""Quiet hours (README "Send policies"): a delivery inside the workspace's window moves to
its end or is skipped, as the campaign chooses — judged in the workspace's zone or in each
recipient's — and the plan, the preview and the run agree. Local times across DST changes
are the point: the window's end is a wall-clock time on the right local day."""

from datetime import UTC, datetime, time

import pytest

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign, SendPolicy
from apps.campaigns.policies import quiet_until
from apps.campaigns.recurrence import zone_for
from apps.devices.services import register_one
from apps.devices.topics import zone_topic
from apps.notifications.models import Delivery
from apps.workspaces.models import Workspace

pytestmark = pytest.mark.django_db

NEW_YORK = "America/New_York"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def quiet(workspace, mode="workspace", start=time(21), end=time(8), zone=NEW_YORK):
    Workspace.objects.filter(pk=workspace.pk).update(timezone=zone)
    workspace.refresh_from_db()
    SendPolicy.objects.update_or_create(
        workspace=workspace,
        defaults={"quiet_hours_start": start, "quiet_hours_end": end, "quiet_hours_mode": mode},
    )


def devices_in(workspace, zones):
    for n, zone in enumerate(zones):
        register_one(workspace_id=workspace.pk, payload={
            "token": f"{n:04d}-quiet:APA91b" + "q" * 60, "time_zone": zone, "language": "en",
            "platform": "android", "topics": ["news"]})  # fmt: skip


def draft(workspace, owner, at: datetime, **fields):
    return campaigns.create_campaign(
        workspace=workspace, actor=owner, name="Evening news", topic="news",
        contents=[{"title": "Tonight", "subtitle": "The headlines"}], scheduled_at=at,
        timezone_name="UTC", **fields,
    )  # fmt: skip


def planned(campaign) -> set:
    return {
        (d.slice, d.condition or d.topic, d.run_at, d.status)
        for d in Delivery.objects.filter(campaign=campaign)
    }


def previewed(api, campaign, start="2035-01-01T00:00:00Z", end="2035-01-31T00:00:00Z") -> set:
    response = api.get(f"/api/v1/campaigns/{campaign.pk}/deliveries", {"from": start, "to": end})
    assert response.status_code == 200, response.content
    return {
        (row["target"].get("condition") or row["target"]["topic"],
         datetime.fromisoformat(row["run_at"]), row["status"])
        for row in response.json()["deliveries"]
    }  # fmt: skip


def without_slices(rows: set) -> set:
    return {(target, run_at, status) for _, target, run_at, status in rows}


# --- the local-time rule -------------------------------------------------------------------------
def test_the_window_ends_at_its_local_time_across_dst_changes():
    ny = zone_for(NEW_YORK)
    # 23:00 EDT on Saturday 3 Nov 2035; the clocks fall back that night: 08:00 EST is 13:00Z
    # (nine hours of wall clock, ten of real time).
    assert quiet_until(utc(2035, 11, 4, 3), ny, time(21), time(8)) == utc(2035, 11, 4, 13)
    # Spring forward (11 Mar 2035): 22:00 EST -> 08:00 EDT is 12:00Z (nine real hours).
    assert quiet_until(utc(2035, 3, 11, 3), ny, time(21), time(8)) == utc(2035, 3, 11, 12)
    # The morning part of a wrapping window ends the same day; outside it: None.
    assert quiet_until(utc(2035, 6, 1, 10), ny, time(21), time(8)) == utc(2035, 6, 1, 12)
    assert quiet_until(utc(2035, 6, 1, 12), ny, time(21), time(8)) is None  # 08:00: open
    assert quiet_until(utc(2035, 6, 1, 0, 59), ny, time(21), time(8)) is None  # 20:59
    # A window that does not wrap; an end inside the spring-forward gap is the gap later.
    assert quiet_until(utc(2035, 6, 1, 17), ny, time(12), time(14)) == utc(2035, 6, 1, 18)
    assert quiet_until(utc(2035, 3, 11, 6), ny, time(1), time(2, 30)) == utc(2035, 3, 11, 7, 30)


# --- in the workspace's zone -----------------------------------------------------------------
def test_defer_moves_the_delivery_to_the_windows_end_and_it_is_sent_then(
    api, connected_workspace, owner, run_due, fake_fcm
):
    quiet(connected_workspace)
    campaign = draft(connected_workspace, owner, utc(2035, 11, 4, 3))  # 23:00 EDT
    expected = {("news", utc(2035, 11, 4, 13), "unplanned")}
    assert previewed(api, campaign, "2035-11-01T00:00:00Z", "2035-11-10T00:00:00Z") == expected
    campaigns.schedule_campaign(campaign=campaign, actor=owner)
    assert planned(campaign) == {("", "news", utc(2035, 11, 4, 13), "pending")}
    assert previewed(api, campaign, "2035-11-01T00:00:00Z", "2035-11-10T00:00:00Z") == {
        ("news", utc(2035, 11, 4, 13), "pending")
    }
    campaign.refresh_from_db()
    assert campaign.next_run_at == utc(2035, 11, 4, 13)  # the campaign says when it goes
    assert run_due(utc(2035, 11, 4, 12, 59)) == []  # not inside the window
    run_due(utc(2035, 11, 4, 13))
    assert len(fake_fcm.messages()) == 1
    assert Delivery.objects.get(campaign=campaign).status == "completed"


def test_skip_records_the_delivery_as_skipped_with_the_reason(
    api, connected_workspace, owner, run_due, fake_fcm
):
    quiet(connected_workspace)
    campaign = draft(connected_workspace, owner, utc(2035, 6, 2, 2), quiet_hours="skip")
    campaigns.schedule_campaign(campaign=campaign, actor=owner)
    delivery = Delivery.objects.get(campaign=campaign)
    assert delivery.status == "skipped" and delivery.last_error.startswith("QUIET_HOURS")
    jobs = api.get(f"/api/v1/campaigns/{campaign.pk}/jobs").json()["results"]
    assert jobs[0]["status"] == "skipped" and "quiet hours" in jobs[0]["last_error"]
    run_due(utc(2035, 6, 2, 2))
    assert fake_fcm.messages() == []
    assert Campaign.objects.get(pk=campaign.pk).status == "failed"  # a one-off sent nothing


def test_ignore_and_outside_the_window_send_at_the_time(connected_workspace, owner):
    quiet(connected_workspace)
    inside = draft(connected_workspace, owner, utc(2035, 6, 2, 2), quiet_hours="ignore")
    outside = draft(connected_workspace, owner, utc(2035, 6, 2, 16))  # 12:00 EDT
    for campaign in (inside, outside):
        campaigns.schedule_campaign(campaign=campaign, actor=owner)
    assert planned(inside) == {("", "news", utc(2035, 6, 2, 2), "pending")}
    assert planned(outside) == {("", "news", utc(2035, 6, 2, 16), "pending")}


def test_a_recurring_campaign_defers_each_occurrence_in_local_time(connected_workspace, owner):
    quiet(connected_workspace)
    # Daily at 22:00 New York time over the November change: each goes at 08:00 local.
    campaign = campaigns.create_campaign(
        workspace=connected_workspace, actor=owner, name="Nightly", topic="news",
        contents=[{"title": "Night"}], scheduled_at=datetime(2035, 11, 2, 22),
        timezone_name=NEW_YORK, rrule="FREQ=DAILY;COUNT=3",
    )  # fmt: skip
    campaigns.schedule_campaign(campaign=campaign, actor=owner, now=utc(2035, 11, 2, 12))
    from apps.notifications import planning

    planning.refill(now=utc(2035, 11, 4, 12))
    runs = sorted(Delivery.objects.filter(campaign=campaign).values_list("run_at", flat=True))
    assert runs == [utc(2035, 11, 3, 12), utc(2035, 11, 4, 13), utc(2035, 11, 5, 13)]


# --- in each recipient's zone ----------------------------------------------------------------
def test_recipient_mode_moves_only_the_zones_inside_the_window(
    api, connected_workspace, owner, run_due, fake_fcm
):
    quiet(connected_workspace, mode="recipient")
    devices_in(connected_workspace, ["Asia/Tokyo", "Europe/London", NEW_YORK])
    # 12:00Z on 15 Jan 2035: 21:00 in Tokyo (quiet), 12:00 in London, 07:00 in New York (quiet).
    campaign = draft(connected_workspace, owner, utc(2035, 1, 15, 12))
    before = previewed(api, campaign)
    campaigns.schedule_campaign(campaign=campaign, actor=owner)
    tokyo, ny = zone_topic("Asia/Tokyo"), zone_topic(NEW_YORK)
    assert planned(campaign) == {
        ("", f"'news' in topics && !('{ny}' in topics || '{tokyo}' in topics)",
         utc(2035, 1, 15, 12), "pending"),
        ("tz:Asia/Tokyo", f"'news' in topics && '{tokyo}' in topics", utc(2035, 1, 15, 23),
         "pending"),
        (f"tz:{NEW_YORK}", f"'news' in topics && '{ny}' in topics", utc(2035, 1, 15, 13),
         "pending"),
    }  # fmt: skip
    # The preview said so before it was planned, and says so after.
    assert before == {(t, r, "unplanned") for t, r, _ in without_slices(planned(campaign))}
    assert previewed(api, campaign) == without_slices(planned(campaign))
    for run_at in (utc(2035, 1, 15, 12), utc(2035, 1, 15, 13), utc(2035, 1, 15, 23)):
        run_due(run_at)
    assert len(fake_fcm.messages()) == 3
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "completed"
    }


def test_recipient_mode_skip_skips_the_quiet_zones_only(connected_workspace, owner):
    quiet(connected_workspace, mode="recipient")
    devices_in(connected_workspace, ["Asia/Tokyo", "Europe/London"])
    campaign = draft(connected_workspace, owner, utc(2035, 1, 15, 12), quiet_hours="skip")
    campaigns.schedule_campaign(campaign=campaign, actor=owner)
    rows = {d.slice: d for d in Delivery.objects.filter(campaign=campaign)}
    assert rows[""].status == "pending"
    assert rows["tz:Asia/Tokyo"].status == "skipped"
    assert "Asia/Tokyo" in rows["tz:Asia/Tokyo"].last_error


def test_recipient_zone_campaigns_are_judged_in_each_zone(api, connected_workspace, owner):
    # Sent at 07:00 in each recipient's zone; quiet until 08:00 there: every zone at 08:00
    # local, on the day New York springs forward too.
    quiet(connected_workspace, mode="recipient")
    devices_in(connected_workspace, ["Europe/Paris", NEW_YORK])
    campaign = draft(connected_workspace, owner, utc(2035, 3, 11, 7), recipient_time_zone=True)
    before = previewed(api, campaign, "2035-03-10T00:00:00Z", "2035-03-13T00:00:00Z")
    campaigns.schedule_campaign(campaign=campaign, actor=owner)
    runs = {d.slice: d.run_at for d in Delivery.objects.filter(campaign=campaign)}
    assert runs == {"tz:Europe/Paris": utc(2035, 3, 11, 7), f"tz:{NEW_YORK}": utc(2035, 3, 11, 12)}
    assert before == {(t, r, "unplanned") for t, r, _ in without_slices(planned(campaign))}


def test_a_target_of_five_topics_is_judged_in_the_workspaces_zone(connected_workspace, owner):
    quiet(connected_workspace, mode="recipient")
    devices_in(connected_workspace, ["Asia/Tokyo", "Europe/London"])
    five = " || ".join(f"'t{i}' in topics" for i in range(5))
    campaign = campaigns.create_campaign(
        workspace=connected_workspace, actor=owner, name="Wide", condition=five,
        contents=[{"title": "Hi"}], scheduled_at=utc(2035, 6, 2, 2), timezone_name="UTC",
    )  # fmt: skip
    campaigns.schedule_campaign(campaign=campaign, actor=owner)  # 22:00 in New York
    assert planned(campaign) == {("", five, utc(2035, 6, 2, 12), "pending")}  # 08:00 EDT
