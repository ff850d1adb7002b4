"""POST /campaigns/{id}/dry-run: every message of the next occurrence checked by the fake FCM
with validate_only, and nothing recorded as sent."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common.models import AuditLog
from apps.notifications.models import Delivery, DeliveryStatus, Notification
from apps.notifications.tests.test_experiment_delivery import EXPERIMENT
from apps.notifications.tests.test_localized import GERMAN, register
from apps.workspaces import services as workspaces

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.DEVICE_SYNC_COALESCE_SECONDS = 0
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1000


def dry_run(api, campaign):
    return api.post(f"/api/v1/campaigns/{campaign.pk}/dry-run", format="json")


def make(workspace, owner, contents: int | list = 2, **fields):
    if isinstance(contents, int):
        contents = [{"title": f"Title {i}", "subtitle": f"Body {i}"} for i in range(contents)]
    return campaigns.create_campaign(
        workspace=workspace, actor=owner, name="Launch", topic="news", contents=contents, **fields
    )


def nothing_sent(fake_fcm, campaign) -> None:
    assert fake_fcm.stats()["messages"] == 0
    assert not Notification.objects.filter(campaign=campaign).exists()
    assert all(
        status in (DeliveryStatus.PENDING, DeliveryStatus.QUEUED)
        for status in Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)
    )


def test_a_scheduled_campaign_is_checked_and_nothing_is_sent(
    api, connected_workspace, owner, fake_fcm
):
    campaign = make(connected_workspace, owner)
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=start)
    requests_before = fake_fcm.stats()["send_requests"]

    response = dry_run(api, campaign)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["messages"] == 2
    assert datetime.fromisoformat(body["occurrence"]) == start
    [delivery] = body["deliveries"]
    assert delivery["target"] == {"topic": "news"} and delivery["status"] == "pending"
    assert datetime.fromisoformat(delivery["run_at"]) == start
    assert [m["position"] for m in delivery["messages"]] == [0, 1]
    assert all(m["ok"] and m["error"] is None for m in delivery["messages"])
    assert fake_fcm.stats()["send_requests"] - requests_before == 2  # FCM was asked, twice
    nothing_sent(fake_fcm, campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SCHEDULED
    entry = AuditLog.objects.get(action="campaign.dry_run", target_id=str(campaign.pk))
    assert entry.actor == owner and entry.metadata["messages"] == 2


def test_a_draft_without_a_schedule_is_checked_as_if_sent_now(
    api, connected_workspace, owner, fake_fcm
):
    campaign = make(connected_workspace, owner, contents=1)
    before = timezone.now()
    body = dry_run(api, campaign).json()
    assert body["ok"] is True
    assert before <= datetime.fromisoformat(body["occurrence"]) <= timezone.now()
    assert [d["status"] for d in body["deliveries"]] == ["unplanned"]
    nothing_sent(fake_fcm, campaign)


def test_fcm_refusals_are_reported_per_message(api, connected_workspace, owner, fake_fcm):
    campaign = make(connected_workspace, owner, contents=1)
    fake_fcm.inject({"kind": "invalid_argument", "message": "Invalid image URL."})
    body = dry_run(api, campaign).json()
    assert body["ok"] is False
    [delivery] = body["deliveries"]
    assert delivery["ok"] is False
    assert delivery["error"] == {"code": "INVALID_ARGUMENT", "message": "Invalid image URL."}
    assert delivery["messages"][0]["error"] == delivery["error"]
    nothing_sent(fake_fcm, campaign)


def test_every_zone_and_language_of_the_next_occurrence(
    api, connected_workspace, owner, fake_fcm, django_capture_on_commit_callbacks
):
    workspaces.update_workspace(
        workspace=connected_workspace, actor=owner, languages=["en", "de"], default_language="en"
    )
    zones = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")
    register(connected_workspace, ["en", "de"] * 6, django_capture_on_commit_callbacks, zones)
    campaign = make(
        connected_workspace, owner, recipient_time_zone=True,
        contents=[{"title": "Good morning", "subtitle": "Coffee", "translations": {"de": GERMAN}}],
    )  # fmt: skip
    at = datetime(2027, 3, 1, 9)  # 09:00 in each recipient's zone
    now = datetime(2027, 2, 27, tzinfo=UTC)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, timezone_name="UTC",
                                scheduled_at=at.replace(tzinfo=UTC), rrule="FREQ=DAILY;COUNT=3",
                                now=now)  # fmt: skip
    first = Delivery.objects.filter(campaign=campaign).order_by("occurrence__at").first()
    planned = Delivery.objects.filter(occurrence=first.occurrence)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("apps.campaigns.api.timezone.now", lambda: now)
        body = dry_run(api, campaign).json()

    assert body["ok"] is True
    rows = {(d["slice"], d["run_at"]) for d in body["deliveries"]}
    assert rows == {(d.slice, d.run_at.isoformat().replace("+00:00", "Z")) for d in planned}
    assert {d["language"] for d in body["deliveries"]} == {"en", "de"}
    assert {z for d in body["deliveries"] for z in d["zones"]} == set(zones)
    for delivery in body["deliveries"]:
        assert delivery["run_at_local"].startswith("2027-03-01T09:00"), delivery
    assert body["messages"] == planned.count() == 6  # 3 zones x 2 languages, one content
    nothing_sent(fake_fcm, campaign)


def test_each_variant_and_every_candidate_of_the_winner(api, connected_workspace, owner, fake_fcm):
    contents = [{"title": "Plain", "subtitle": "a"}, {"title": "Bold!", "subtitle": "b"}]
    campaign = make(connected_workspace, owner, contents=contents, experiment=EXPERIMENT)
    body = dry_run(api, campaign).json()
    by_variant = {d["variant"]: [m["position"] for m in d["messages"]] for d in body["deliveries"]}
    assert by_variant == {"0": [0], "1": [1], "winner": [0, 1]}
    assert body["ok"] is True and body["messages"] == 4
    nothing_sent(fake_fcm, campaign)


def test_refusals(api, workspace, connected_workspace, owner, fake_fcm, make_workspace):
    campaign = make(connected_workspace, owner)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.COMPLETED)
    response = dry_run(api, campaign)
    assert response.status_code == 409 and response.json()["error"]["code"] == "CONFLICT"

    empty = campaigns.create_campaign(
        workspace=connected_workspace, actor=owner, name="Empty", topic="news", contents=[]
    )
    response = dry_run(api, empty)
    assert response.status_code == 400 and "contents" in response.json()["error"]["details"]


def test_without_firebase_it_is_a_409(api, workspace, owner):
    campaign = make(workspace, owner)
    response = dry_run(api, campaign)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "FIREBASE_NOT_CONNECTED"


def test_the_message_cap(api, connected_workspace, owner, fake_fcm, settings):
    settings.DRY_RUN_MAX_MESSAGES = 1
    body = dry_run(api, make(connected_workspace, owner, contents=3)).json()
    [delivery] = body["deliveries"]
    assert [m["ok"] for m in delivery["messages"]] == [True, False, False]
    assert delivery["error"]["code"] == "NOT_CHECKED"
    assert fake_fcm.stats()["send_requests"] == 1
