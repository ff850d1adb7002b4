"""Events come from the services that make the changes, in their transaction: campaign
scheduling and cancelling, the engine's deliveries and campaign outcomes, Firebase
connection failures. Payloads are {"type", "timestamp", "data"} with the ids."""

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign
from apps.notifications.dispatcher import claim_due
from apps.notifications.testing import make_due_campaigns
from apps.webhooks.models import WebhookMessage

pytestmark = pytest.mark.usefixtures("webhook_settings")


@pytest.fixture
def hooked(make_endpoint, connected_workspace, receiver, django_capture_on_commit_callbacks):
    """An endpoint for every event of the workspace; its deliveries are not run (these tests
    look at the outbox)."""
    with django_capture_on_commit_callbacks(execute=False):
        make_endpoint(connected_workspace, receiver.url)
    return connected_workspace


def events(event_type=None) -> list[dict]:
    rows = WebhookMessage.objects.order_by("created_at", "ordinal")
    if event_type:
        rows = rows.filter(event_type=event_type)
    return [json.loads(row.body) for row in rows]


def test_schedule_and_cancel_emit_campaign_events(hooked, owner):
    campaign = campaigns.create_campaign(
        workspace=hooked, actor=owner, name="Launch", topic="news",
        contents=[{"title": "Hi", "subtitle": "there"}],
    )  # fmt: skip
    at = timezone.now() + timedelta(hours=1)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=at)
    campaigns.cancel_campaign(campaign=Campaign.objects.get(pk=campaign.pk), actor=owner)
    scheduled, cancelled = events()
    assert scheduled["type"] == "campaign.scheduled" and cancelled["type"] == "campaign.cancelled"
    assert scheduled["data"]["campaign_id"] == str(campaign.pk)
    assert scheduled["data"]["workspace_id"] == str(hooked.pk)
    assert scheduled["data"]["previous_status"] == "draft"
    assert scheduled["data"]["next_run_at"].endswith("Z")
    assert cancelled["data"]["previous_status"] == "scheduled"
    assert scheduled["timestamp"].endswith("Z")


def test_an_approval_request_and_the_approval_emit_events(hooked, owner, make_user, add_member):
    from apps.campaigns.models import SendPolicy
    from apps.devices.services import register_one

    register_one(workspace_id=hooked.pk, payload={
        "token": "0001-device:APA91b" + "d" * 60, "time_zone": "UTC", "language": "en",
        "platform": "android", "topics": ["news"]})  # fmt: skip
    SendPolicy.objects.create(workspace=hooked, approval_threshold=0)
    member = make_user(email="member@example.com")
    add_member(hooked, member, "member")
    campaign = campaigns.create_campaign(
        workspace=hooked, actor=member, name="Launch", topic="news",
        contents=[{"title": "Hi", "subtitle": "there"}],
    )  # fmt: skip
    at = timezone.now() + timedelta(hours=1)
    campaigns.schedule_campaign(campaign=campaign, actor=member, scheduled_at=at)
    campaigns.approve_campaign(campaign=Campaign.objects.get(pk=campaign.pk), actor=owner)
    requested, scheduled = events()
    assert requested["type"] == "campaign.approval_requested"
    assert requested["data"]["status"] == "pending_approval"
    assert scheduled["type"] == "campaign.scheduled"
    assert scheduled["data"]["previous_status"] == "pending_approval"


def test_a_rolled_back_schedule_emits_nothing(hooked, owner):
    campaign = campaigns.create_campaign(
        workspace=hooked, actor=owner, name="Launch", topic="news",
        contents=[{"title": "Hi", "subtitle": "there"}],
    )  # fmt: skip
    with pytest.raises(RuntimeError), transaction.atomic():
        at = timezone.now() + timedelta(hours=1)
        campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=at)
        assert len(events()) == 1  # written with the change...
        raise RuntimeError("the request fails after scheduling")
    assert events() == []  # ...and rolled back with it


def test_the_engine_emits_delivery_and_campaign_outcomes(
    hooked, fake_fcm, django_capture_on_commit_callbacks
):
    sent, failed = make_due_campaigns(hooked, 2, at=timezone.now() - timedelta(seconds=1))
    fake_fcm.inject({"kind": "invalid_argument"})  # the first send is refused for good
    with django_capture_on_commit_callbacks(execute=True):
        claim_due()
    by_delivery = {
        e["data"]["delivery_id"]: e for e in events() if e["type"].startswith("delivery.")
    }
    assert {e["type"] for e in by_delivery.values()} == {"delivery.sent", "delivery.failed"}
    refused = next(e for e in by_delivery.values() if e["type"] == "delivery.failed")
    assert refused["data"]["notifications"] == {"sent": 0, "failed": 1}
    assert "INVALID_ARGUMENT" in refused["data"]["error"]
    delivered = next(e for e in by_delivery.values() if e["type"] == "delivery.sent")
    assert delivered["data"]["notifications"] == {"sent": 1, "failed": 0}
    assert delivered["data"]["target"] == {"topic": "news"}
    assert set(by_delivery) == {str(sent.pk), str(failed.pk)}
    outcomes = {
        e["data"]["campaign_id"]: e["type"] for e in events() if e["type"].startswith("campaign.")
    }
    assert sorted(outcomes.values()) == ["campaign.completed", "campaign.failed"]
    assert outcomes[delivered["data"]["campaign_id"]] == "campaign.completed"


def test_the_engine_writes_nothing_without_a_subscribed_endpoint(
    connected_workspace, fake_fcm, django_capture_on_commit_callbacks
):
    """...and looks endpoints up once per batch and outcome kind, not per delivery."""
    from apps.webhooks import services

    services.create_endpoint(
        workspace=connected_workspace, actor=None, url="http://127.0.0.1:9/x",
        event_types=["experiment.decided"],
    )  # fmt: skip
    make_due_campaigns(connected_workspace, 30, at=timezone.now() - timedelta(seconds=1))
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        claim_due()
    assert Campaign.objects.filter(status="completed").count() == 30
    lookups = [q["sql"] for q in queries if "webhooks_webhookendpoint" in q["sql"]]
    assert len(lookups) == 2  # delivery outcomes, campaign outcomes: one query each
    assert WebhookMessage.objects.count() == 0


def test_a_failing_firebase_connection_emits_an_event(api, fake_fcm, hooked):
    from apps.integrations.firebase.fake import make_demo_service_account

    unknown = make_demo_service_account("demo-project", token_uri=fake_fcm.token_uri)
    response = api.put(
        "/api/v1/integrations/firebase",
        {"project_id": "demo-project", "service_account": unknown},
        format="json",
    )
    assert response.json()["status"] == "error"
    (event,) = events("firebase.connection_failed")
    assert event["data"]["project_id"] == "demo-project"
    assert event["data"]["error"]["code"] == "AUTH_FAILED"
    assert "private_key" not in json.dumps(event)


def test_sends_refused_for_the_connection_mark_it_broken_once(
    hooked, fake_fcm, django_capture_on_commit_callbacks
):
    from apps.integrations.firebase.models import FirebaseConfig

    make_due_campaigns(hooked, 3, at=timezone.now() - timedelta(seconds=1))
    fake_fcm.inject(*[{"kind": "sender_id_mismatch"}] * 3)  # every send: the wrong sender
    with django_capture_on_commit_callbacks(execute=True):
        claim_due()
    config = FirebaseConfig.objects.get(workspace=hooked)
    assert config.status == "error" and config.last_error.startswith("SENDER_ID_MISMATCH")
    (event,) = events("firebase.connection_failed")  # one event, not one per delivery
    assert event["data"]["error"]["code"] == "SENDER_ID_MISMATCH"
    assert event["data"]["status"] == "error"
    assert len(events("delivery.failed")) == 3

    make_due_campaigns(hooked, 1, at=timezone.now() - timedelta(seconds=1))
    fake_fcm.inject({"kind": "sender_id_mismatch"})
    with django_capture_on_commit_callbacks(execute=True):
        claim_due()
    assert len(events("firebase.connection_failed")) == 1  # already marked: no new event


def test_an_experiment_decision_emits_an_event_once(hooked, owner):
    experiment = {"metric": "opened", "window_seconds": 1800, "buckets_per_variant": 2,
                  "fallback": 1, "min_sample": 20}  # fmt: skip
    campaign = campaigns.create_campaign(
        workspace=hooked, actor=owner, name="A/B", topic="news", experiment=experiment,
        contents=[{"title": "Plain", "subtitle": "a"}, {"title": "Bold!", "subtitle": "b"}],
    )  # fmt: skip
    assert campaigns.experiment_winner(campaign) == 1  # too few deliveries: the fallback
    assert campaigns.experiment_winner(Campaign.objects.get(pk=campaign.pk)) == 1
    (event,) = events("experiment.decided")
    assert event["data"]["campaign_id"] == str(campaign.pk)
    assert event["data"]["winner"] == 1 and event["data"]["metric"] == "opened"
    assert "fallback" in event["data"]["reason"]
