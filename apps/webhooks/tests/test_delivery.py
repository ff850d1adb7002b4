"""Delivery over real HTTP to a local receiver: in order, exactly once after recovery,
signed per Standard Webhooks, retried, disabled after the whole schedule fails, re-enabled,
redelivered, rotated secrets; the outbox commits and rolls back with the change."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apps.common.models import AuditLog
from apps.webhooks import services
from apps.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from apps.webhooks.tests.conftest import pump, verified

pytestmark = pytest.mark.usefixtures("webhook_settings")


def emit_numbered(workspace, numbers):
    """One committed transaction per call, emitting `n` test-ish events in order."""
    with transaction.atomic():
        for n in numbers:
            services.emit(workspace.pk, "campaign.completed", {"n": n})


def test_fails_times_out_recovers_then_gets_every_event_once_in_order(
    transactional_db, workspace, make_endpoint, make_receiver
):
    # Two 500s, then a request that sleeps past the 0.5 s timeout, then healthy.
    receiver = make_receiver(500, 500, ("sleep", 1.2, 503))
    issued = make_endpoint(workspace, receiver.url)
    emit_numbered(workspace, [0, 1, 2])
    emit_numbered(workspace, [3])
    emit_numbered(workspace, [4, 5])

    pump(lambda: len(receiver.accepted()) >= 6)

    payloads = [verified(r, issued.secret) for r in receiver.all()]  # every request verifies
    ids = [r.headers["webhook-id"] for r in receiver.all()]
    # Before recovery only the head of the line was tried (the others waited behind it).
    assert len(set(ids[:4])) == 1 and [p["data"]["n"] for p in payloads[:4]] == [0] * 4
    accepted = receiver.accepted()
    assert [verified(r, issued.secret)["data"]["n"] for r in accepted] == [0, 1, 2, 3, 4, 5]
    accepted_ids = [r.headers["webhook-id"] for r in accepted]
    assert len(accepted_ids) == len(set(accepted_ids)) == 6  # each event accepted once
    assert len(receiver.all()) == 9  # 3 failed attempts + 6 accepted: nothing sent twice
    assert payloads[0]["type"] == "campaign.completed" and payloads[0]["timestamp"]

    log = list(WebhookAttempt.objects.order_by("created_at"))
    assert [a.status_code for a in log[:3]] == [500, 500, None]
    assert "timed out" in log[2].error and log[0].error == "HTTP 500"
    assert [a.attempt for a in log[:4]] == [1, 2, 3, 4] and log[3].outcome == "succeeded"
    assert log[0].response_body == "answered 500" and log[0].latency_ms is not None
    assert set(WebhookMessage.objects.values_list("status", flat=True)) == {"delivered"}
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.is_enabled and endpoint.lease_token is None and endpoint.retry_at is None


def test_a_rolled_back_change_emits_nothing(transactional_db, workspace, make_endpoint, receiver):
    make_endpoint(workspace, receiver.url)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.emit(workspace.pk, "campaign.completed", {"n": 1})
        raise RuntimeError("the change fails")
    services.sweep()
    assert WebhookMessage.objects.count() == 0 and receiver.all() == []


def test_an_event_whose_task_was_never_enqueued_is_delivered_by_the_sweep(
    db, workspace, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    """The broker lost the task (its on-commit enqueue never ran): the sweep delivers it."""
    issued = make_endpoint(workspace, receiver.url)
    with django_capture_on_commit_callbacks(execute=False) as lost:
        services.emit(workspace.pk, "campaign.failed", {"campaign_id": "c1"})
    assert lost and receiver.all() == []
    assert services.sweep() == 1
    (request,) = receiver.accepted()
    assert verified(request, issued.secret)["data"] == {"campaign_id": "c1"}
    assert WebhookMessage.objects.get().status == MessageStatus.DELIVERED


def test_events_only_for_subscribed_enabled_endpoints(db, workspace, make_endpoint, receiver):
    completed = make_endpoint(workspace, receiver.url, ["campaign.completed"]).endpoint
    everything = make_endpoint(workspace, receiver.url, ["*"]).endpoint
    off = make_endpoint(workspace, receiver.url, ["*"]).endpoint
    services.disable_endpoint(endpoint=off, actor=None, reason="test")
    built = []
    services.emit(workspace.pk, "campaign.completed", lambda: built.append(1) or {"a": 1})
    services.emit(workspace.pk, "delivery.sent", {"b": 2})
    rows = set(WebhookMessage.objects.values_list("endpoint_id", "event_type"))
    assert rows == {
        (completed.pk, "campaign.completed"),
        (everything.pk, "campaign.completed"),
        (everything.pk, "delivery.sent"),
    }
    assert built == [1]  # built once, shared by both endpoints (one event id)
    assert (
        WebhookMessage.objects.filter(event_type="campaign.completed")
        .values("event_id")
        .distinct()
        .count()
        == 1
    )
    # Nobody wants it: nothing written, the payload never built.
    services.delete_endpoint(endpoint=everything, actor=None)
    assert services.emit(workspace.pk, "firebase.connection_failed", lambda: 1 / 0) == 0


def test_the_whole_schedule_failing_disables_the_endpoint_then_enable_and_redeliver(
    transactional_db, workspace, make_endpoint, make_receiver, client_for, owner, settings
):
    settings.WEBHOOK_RETRY_SCHEDULE = [0.1, 0.1]  # 3 attempts in all
    receiver = make_receiver(500, 500, 500)
    issued = make_endpoint(workspace, receiver.url)
    emit_numbered(workspace, [0])
    emit_numbered(workspace, [1])
    endpoint = WebhookEndpoint.objects.get()
    pump(lambda: not WebhookEndpoint.objects.get().is_enabled, what="the endpoint disabled")

    endpoint.refresh_from_db()
    assert endpoint.disabled_at is not None
    assert "all 3 attempts" in endpoint.disabled_reason and "HTTP 500" in endpoint.disabled_reason
    first, second = WebhookMessage.objects.order_by("created_at")
    assert (first.status, first.attempts, second.status) == ("failed", 3, "pending")
    entry = AuditLog.objects.get(action="webhook_endpoint.disabled")
    assert entry.target_id == str(endpoint.pk) and entry.actor is None
    api = client_for(owner, workspace)
    shown = api.get(f"/api/v1/webhooks/endpoints/{endpoint.pk}").json()
    assert shown["enabled"] is False and shown["disabled_reason"] == endpoint.disabled_reason
    # While disabled nothing more is written for it, and the sweep leaves it alone.
    emit_numbered(workspace, [99])
    services.sweep()
    assert len(receiver.all()) == 3 and WebhookMessage.objects.count() == 2

    # Enabled again: the waiting event goes out; the given-up one on redelivery, same id.
    response = api.post(f"/api/v1/webhooks/endpoints/{endpoint.pk}/enable")
    assert response.status_code == 200 and response.json()["enabled"] is True
    pump(lambda: len(receiver.accepted()) == 1)
    assert verified(receiver.accepted()[0], issued.secret)["data"] == {"n": 1}
    failed_attempt = WebhookAttempt.objects.filter(message=first).latest("created_at")
    url = f"/api/v1/webhooks/endpoints/{endpoint.pk}/deliveries/{failed_attempt.pk}/redeliver"
    response = api.post(url)
    assert response.status_code == 202, response.content
    assert response.json()["event_id"] == first.event_id
    pump(lambda: len(receiver.accepted()) == 2)
    again = receiver.accepted()[1]
    assert again.headers["webhook-id"] == first.event_id
    assert verified(again, issued.secret)["data"] == {"n": 0}
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"webhook_endpoint.enabled", "webhook_endpoint.redelivery_requested"} <= actions


def test_the_test_ping_is_delivered_like_any_event(
    transactional_db, workspace, client_for, owner, receiver
):
    api = client_for(owner, workspace)
    created = api.post(
        "/api/v1/webhooks/endpoints", {"url": receiver.url, "event_types": ["campaign.failed"]}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    response = api.post(f"/api/v1/webhooks/endpoints/{body['id']}/test")
    assert response.status_code == 202 and response.json()["event_type"] == "webhook.test"
    pump(lambda: len(receiver.accepted()) == 1)
    payload = verified(receiver.accepted()[0], body["secret"])
    assert payload["type"] == "webhook.test"
    assert payload["data"]["endpoint_id"] == body["id"]
    log = api.get(f"/api/v1/webhooks/endpoints/{body['id']}/deliveries").json()
    assert len(log["results"]) == 1
    (row,) = log["results"]
    assert (row["event_type"], row["status_code"], row["outcome"]) == (
        "webhook.test",
        200,
        "succeeded",
    )
    assert row["event_id"] == receiver.accepted()[0].headers["webhook-id"]
    assert row["response_headers"]["content-type"] == "text/plain"


def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    transactional_db, workspace, make_endpoint, receiver, owner
):
    issued = make_endpoint(workspace, receiver.url)
    old = issued.secret
    rotated = services.rotate_secret(endpoint=issued.endpoint, actor=owner)
    new = rotated.secret
    assert new != old and new.startswith("whsec_")
    services.send_test(endpoint=rotated.endpoint, actor=owner)
    pump(lambda: len(receiver.accepted()) == 1)
    during = receiver.accepted()[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verified(during, old)
    verified(during, new)

    # The overlap is over (as WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS later).
    WebhookEndpoint.objects.update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    services.send_test(endpoint=rotated.endpoint, actor=owner)
    pump(lambda: len(receiver.accepted()) == 2)
    after = receiver.accepted()[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    verified(after, new)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    assert AuditLog.objects.filter(action="webhook_endpoint.secret_rotated").count() == 1


def test_the_webhook_id_is_stable_across_retries_and_the_timestamp_is_each_attempts(
    transactional_db, workspace, make_endpoint, make_receiver
):
    receiver = make_receiver(500)
    issued = make_endpoint(workspace, receiver.url)
    emit_numbered(workspace, [7])
    pump(lambda: len(receiver.accepted()) == 1)
    first, second = receiver.all()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    for request in (first, second):
        verified(request, issued.secret)


def test_old_finished_events_and_attempts_are_purged(
    transactional_db, workspace, make_endpoint, receiver, settings
):
    make_endpoint(workspace, receiver.url)
    emit_numbered(workspace, [1, 2])
    pump(lambda: len(receiver.accepted()) == 2)
    # Another worker holds the line: this one stays pending, and is kept.
    WebhookEndpoint.objects.update(
        lease_token=uuid.uuid4(), lease_expires_at=timezone.now() + timedelta(hours=1)
    )
    emit_numbered(workspace, [3])
    long_ago = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS + 1)
    WebhookMessage.objects.filter(status="delivered").update(updated_at=long_ago)
    WebhookAttempt.objects.update(created_at=long_ago)
    assert services.purge_old() == 4  # 2 events, 2 attempts
    assert list(WebhookMessage.objects.values_list("status", flat=True)) == ["pending"]


@pytest.mark.postgres
def test_two_workers_racing_for_one_endpoint_deliver_each_event_once(
    transactional_db, workspace, make_endpoint, make_receiver
):
    from apps.common.testing import race

    receiver = make_receiver(("sleep", 0.3, 200))  # the first attempt holds the line a while
    issued = make_endpoint(workspace, receiver.url)
    endpoint_id = str(issued.endpoint.pk)
    lease = WebhookEndpoint.objects.filter(pk=endpoint_id)
    lease.update(lease_token=uuid.uuid4(), lease_expires_at=timezone.now() + timedelta(hours=1))
    emit_numbered(workspace, [0, 1, 2, 3])  # held: its own task cannot start it
    lease.update(lease_token=None, lease_expires_at=None)
    outcomes = race(*[lambda: services.deliver_endpoint(endpoint_id)] * 4)
    assert sorted(o["delivered"] for o in outcomes) == [0, 0, 0, 4]
    accepted = [r.headers["webhook-id"] for r in receiver.accepted()]
    assert len(accepted) == len(set(accepted)) == 4 == len(receiver.all())
    assert [verified(r, issued.secret)["data"]["n"] for r in receiver.accepted()] == [0, 1, 2, 3]
