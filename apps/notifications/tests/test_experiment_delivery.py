"""An A/B test through the engine: variants to their buckets at the run time, events from
fake apps, the decision after the window, the winner to everyone else — once each."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from apps.campaigns import services as campaigns
from apps.common.models import AuditLog
from apps.devices import topics
from apps.devices.models import Device
from apps.devices.services import registry
from apps.notifications.models import Delivery, Notification
from apps.notifications.tests.test_recipient_zones import settle_subscriptions, token

pytestmark = pytest.mark.django_db

AT = datetime(2027, 2, 1, 9, tzinfo=UTC)
EXPERIMENT = {"metric": "opened", "window_seconds": 1800, "buckets_per_variant": 2,
              "fallback": 0, "min_sample": 20}  # fmt: skip


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.DEVICE_SYNC_COALESCE_SECONDS = 0
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1000


def make(workspace, owner, **fields):
    return campaigns.create_campaign(
        workspace=workspace, actor=owner, name="A/B", topic="news",
        contents=[{"title": "Plain", "subtitle": "a"}, {"title": "Bold!", "subtitle": "b"}],
        experiment=EXPERIMENT, **fields,
    )  # fmt: skip


def test_the_better_variant_reaches_everyone_else(
    connected_workspace, owner, app, api, fake_fcm, demo_account, run_due,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    devices = [{"token": token(n), "time_zone": "UTC", "language": "en", "platform": "ios",
                "topics": ["news"]} for n in range(400)]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        registry.register_batch(workspace_id=connected_workspace.pk, payload={"devices": devices})
    settle_subscriptions(connected_workspace)
    campaign = make(connected_workspace, owner)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=AT,
                                timezone_name="UTC", now=AT - timedelta(days=1))  # fmt: skip
    assert {(d.slice, d.run_at) for d in Delivery.objects.filter(campaign=campaign)} == {
        ("ab:0", AT), ("ab:1", AT), ("ab:winner", AT + timedelta(seconds=1800))
    }  # fmt: skip
    run_due(AT)
    project = demo_account["project_id"]
    by_title = {m["message"]["notification"]["title"]: m for m in fake_fcm.messages(project)}
    bucket_of = {
        token(int(d.token_prefix)): d.bucket
        for d in Device.objects.filter(workspace=campaign.workspace)
    }
    assert {bucket_of[t] for t in by_title["Plain"]["reached"]} == {0, 1}
    assert {bucket_of[t] for t in by_title["Bold!"]["reached"]} == {2, 3}

    # Fake apps: every reached device reports the delivery; B is opened far more often.
    rng, events = random.Random(7), []
    for title, rate in (("Plain", 0.1), ("Bold!", 0.6)):
        notification = Notification.objects.get(campaign=campaign, title=title)
        for n in range(len(by_title[title]["reached"])):
            base = {"notification_id": str(notification.pk), "platform": "ios",
                    "occurred_at": (AT + timedelta(minutes=1)).isoformat()}  # fmt: skip
            events.append({"id": f"d-{notification.position}-{n}", "type": "delivered", **base})
            if rng.random() < rate:
                events.append({"id": f"o-{notification.position}-{n}", "type": "opened", **base})
    with pytest.MonkeyPatch.context() as patch:  # the events happened "then", not now
        patch.setattr(
            "apps.analytics.services.ingest.timezone.now", lambda: AT + timedelta(minutes=5)
        )
        response = app.post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202 and response.json()["rejected"] == 0, response.content

    run_due(AT + timedelta(seconds=1800))
    campaign.refresh_from_db()
    result = campaign.experiment_result
    assert (result["winner"], result["significant"]) == (1, True), result
    assert result["variants"][1]["rate"] > result["variants"][0]["rate"]
    winner = next(
        m
        for m in fake_fcm.messages(project)
        if m["message"]["condition"].endswith(
            "!('pushpilot-bucket-0' in topics || 'pushpilot-bucket-1' in topics || "
            "'pushpilot-bucket-2' in topics || 'pushpilot-bucket-3' in topics)"
        )
    )
    assert winner["message"]["notification"]["title"] == "Bold!"
    reached = [t for m in fake_fcm.messages(project) for t in m["reached"]]
    assert sorted(reached) == sorted(token(n) for n in range(400))  # each device once
    assert {bucket_of[t] for t in winner["reached"]} == set(range(4, 10))
    stats = api.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()
    assert stats["experiment"]["winner"] == 1
    assert AuditLog.objects.filter(
        action="campaign.experiment_decided", target_id=str(campaign.pk)
    ).exists()
    assert campaign.status == "completed"


@pytest.mark.parametrize(
    "fields,message",
    [({"rrule": "FREQ=DAILY;COUNT=2", "scheduled_at": AT}, "recurring"),
     ({"recipient_time_zone": True}, "one instant")],
)  # fmt: skip
def test_combinations_refused(connected_workspace, owner, fields, message):
    from apps.common.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        make(connected_workspace, owner, **fields)
    assert message in str(refused.value.details)


def test_the_api_takes_and_shows_an_experiment(api):
    response = api.post("/api/v1/campaigns", {
        "name": "x", "target": {"topic": "news"}, "experiment": {"metric": "clicked"},
        "contents": [{"title": "a", "subtitle": "a"}, {"title": "b", "subtitle": "b"}],
    }, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["experiment"]["metric"] == "clicked"
    assert response.json()["experiment"]["window_seconds"] == 3600
    one = api.post("/api/v1/campaigns", {
        "name": "x", "target": {"topic": "news"}, "experiment": {},
        "contents": [{"title": "a", "subtitle": "a"}],
    }, format="json")  # fmt: skip
    assert one.status_code == 201, one.content  # an empty experiment is none
    assert one.json()["experiment"] is None
    bad = api.post("/api/v1/campaigns", {
        "name": "x", "target": {"topic": "news"}, "experiment": {"metric": "clicked"},
        "contents": [{"title": "a", "subtitle": "a"}],
    }, format="json")  # fmt: skip
    assert bad.status_code == 400
    assert "experiment.variants" in bad.json()["error"]["details"]
    assert topics.bucket_topic(0) == "pushpilot-bucket-0"


def test_the_preview_shows_the_variants(connected_workspace, owner, api):
    campaign = make(connected_workspace, owner, scheduled_at=AT)
    rows = api.get(f"/api/v1/campaigns/{campaign.pk}/deliveries",
                   {"from": "2027-02-01T00:00:00Z", "to": "2027-02-02T00:00:00Z"}).json()  # fmt: skip
    assert [(r["variant"], r["run_at"]) for r in rows["deliveries"]] == [
        ("0", "2027-02-01T09:00:00Z"), ("1", "2027-02-01T09:00:00Z"),
        ("winner", "2027-02-01T09:30:00Z"),
    ]  # fmt: skip
