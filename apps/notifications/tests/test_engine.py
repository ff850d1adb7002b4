"""The sending engine end to end in eager mode: claim -> batch task -> fake FCM -> records."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign
from apps.common import audit
from apps.common.models import AuditLog
from apps.notifications import services
from apps.notifications.dispatcher import (
    DueCounts,
    claim_limit,
    reclaim_expired_leases,
    refill_plans,
)
from apps.notifications.metrics import notifications_failed_total, notifications_sent_total
from apps.notifications.models import Delivery, DeliveryStatus, Notification, Occurrence
from apps.notifications.testing import make_due_campaigns


def test_a_campaign_is_sent_once_per_content_and_completes(scheduled, run_due, fake_fcm):
    campaign, delivery = scheduled(contents=2)
    sent_before = notifications_sent_total._value.get()
    assert run_due(delivery.run_at - timedelta(seconds=1)) == []  # not due yet
    [(_, ids)] = run_due(delivery.run_at)
    assert ids == [str(delivery.pk)]

    delivery.refresh_from_db()
    campaign.refresh_from_db()
    assert delivery.status == DeliveryStatus.COMPLETED and delivery.attempts == 1
    assert campaign.status == "completed" and campaign.last_run_at == delivery.run_at
    assert campaign.next_run_at is None
    notifications = list(Notification.objects.filter(delivery=delivery).order_by("position"))
    assert [n.status for n in notifications] == ["sent", "sent"]
    received = {m["message"]["notification"]["title"]: m for m in fake_fcm.messages("demo-project")}
    assert set(received) == {"Title 0", "Title 1"}
    for notification in notifications:
        message = received[notification.title]
        collapse = notification.pk.hex
        assert message["message"]["apns"]["headers"]["apns-collapse-id"] == collapse
        assert message["message"]["android"]["notification"]["tag"] == collapse
        assert notification.fcm_message_id.endswith(message["message_id"])
        # The app reports opens with these (POST /events).
        assert message["message"]["data"]["pushpilot_notification_id"] == str(notification.pk)
        assert message["message"]["data"]["pushpilot_campaign_id"] == str(campaign.pk)
    assert notifications_sent_total._value.get() == sent_before + 2
    assert [e["action"] for e in _engine_entries(delivery.pk)] == ["delivery.completed"]
    history = AuditLog.objects.filter(audit.about_campaign(campaign.pk)).order_by("created_at")
    transitions = [
        (row.metadata["from"], row.metadata["to"])
        for row in history
        if row.action == "campaign.transition"
    ] + [
        (entry["from"], entry["to"])
        for entry in audit.engine_entries(history)
        if entry["action"] == "campaign.transition" and entry["target_id"] == str(campaign.pk)
    ]
    assert transitions == [
        ("draft", "scheduled"),
        ("scheduled", "running"),
        ("running", "completed"),
    ]
    assert run_due(delivery.run_at + timedelta(hours=1)) == []  # nothing left


def _engine_entries(target_id) -> list[dict]:
    """What the engine's batch rows list about one delivery or campaign, in order."""
    rows = AuditLog.objects.filter(target_type=audit.ENGINE_BATCH_TARGET).order_by("created_at")
    return [e for e in audit.engine_entries(rows) if e["target_id"] == str(target_id)]


def test_a_duplicate_or_stale_batch_does_nothing(scheduled, run_due, fake_fcm):
    _, delivery = scheduled(contents=1)
    [(token, ids)] = run_due(delivery.run_at)
    assert services.run_batch(token, ids) == {"ignored": 1}
    assert services.run_batch(str(uuid.uuid4()), ids) == {"ignored": 1}
    assert len(fake_fcm.messages()) == 1


def test_unavailable_then_ok_sends_each_content_once(scheduled, run_until_settled, fake_fcm):
    _, delivery = scheduled(contents=2)
    fake_fcm.inject(
        {"kind": "unavailable", "retry_after": 0}, {"kind": "unavailable", "retry_after": 0}
    )
    run_until_settled(delivery)
    delivery.refresh_from_db()
    # Both contents go out together, both are refused once, both are sent by attempt 2.
    assert delivery.status == DeliveryStatus.COMPLETED and delivery.attempts == 2
    assert fake_fcm.send_requests == 4 and len(fake_fcm.messages()) == 2
    assert Notification.objects.filter(delivery=delivery, status="sent").count() == 2
    outcomes = [e["action"] for e in _engine_entries(delivery.pk)]
    assert outcomes == ["delivery.retry_scheduled", "delivery.completed"]


def test_a_retry_after_is_honoured_through_the_database(scheduled, run_due, fake_fcm):
    _, delivery = scheduled(contents=1)
    fake_fcm.inject({"kind": "quota", "retry_after": 120})
    before = timezone.now()
    run_due(delivery.run_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and "QUOTA_EXCEEDED" in delivery.last_error
    assert (
        before + timedelta(seconds=119)
        <= delivery.due_at
        <= timezone.now() + timedelta(seconds=121)
    )
    assert Notification.objects.get(delivery=delivery).status == "pending"
    # The delivery keeps its run_at (the occurrence's time) and waits until due_at.
    assert run_due(delivery.due_at - timedelta(seconds=1)) == []
    assert len(run_due(delivery.due_at)) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.COMPLETED and len(fake_fcm.messages()) == 1


@pytest.mark.parametrize(
    "kind,code", [("unregistered", "UNREGISTERED"), ("invalid_argument", "INVALID_ARGUMENT")]
)
def test_permanent_errors_are_not_retried(scheduled, run_due, fake_fcm, kind, code):
    campaign, delivery = scheduled(contents=1)
    failed_before = notifications_failed_total.labels(code)._value.get()
    fake_fcm.inject({"kind": kind})
    run_due(delivery.run_at)
    delivery.refresh_from_db()
    campaign.refresh_from_db()
    assert fake_fcm.send_requests == 1
    assert delivery.status == DeliveryStatus.FAILED and code in delivery.last_error
    assert campaign.status == "failed"
    notification = Notification.objects.get(delivery=delivery)
    assert notification.status == "failed" and notification.error_code == code
    assert notifications_failed_total.labels(code)._value.get() == failed_before + 1
    [outcome] = _engine_entries(delivery.pk)
    assert outcome["action"] == "delivery.failed" and code in outcome["error"]


def test_one_content_failing_does_not_stop_the_others(scheduled, run_due, fake_fcm):
    _, delivery = scheduled(contents=2)
    fake_fcm.inject({"kind": "invalid_argument"})
    run_due(delivery.run_at)
    delivery.refresh_from_db()
    statuses = sorted(
        Notification.objects.filter(delivery=delivery).values_list("status", flat=True)
    )
    assert statuses == ["failed", "sent"]
    assert delivery.status == DeliveryStatus.COMPLETED and "INVALID_ARGUMENT" in delivery.last_error


def test_a_delivery_that_always_fails_stops_after_the_bounded_attempts(
    scheduled, run_until_settled, fake_fcm, settings
):
    campaign, delivery = scheduled(contents=1)
    fake_fcm.inject(*[{"kind": "unavailable", "retry_after": 0}] * 10)
    run_until_settled(delivery)
    delivery.refresh_from_db()
    campaign.refresh_from_db()
    assert fake_fcm.send_requests == settings.JOB_MAX_ATTEMPTS
    assert delivery.status == DeliveryStatus.FAILED and "gave up after" in delivery.last_error
    assert campaign.status == "failed"
    notification = Notification.objects.get(delivery=delivery)
    assert notification.status == "failed" and notification.error_code == "UNAVAILABLE"
    assert "gave up after 5 attempts" in notification.error_message


def test_waiting_for_a_worker_costs_no_attempt(scheduled, claim_only, fake_fcm, run_due):
    """No worker for a long while: the queue lease expires again and again; every claim
    is returned, none counts as an attempt, and the first worker sends it."""
    _, delivery = scheduled(contents=1)
    for _ in range(12):  # more than JOB_MAX_ATTEMPTS
        claim_only(delivery.run_at)
        Delivery.objects.filter(pk=delivery.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert reclaim_expired_leases() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 0 and delivery.status == DeliveryStatus.PENDING
    run_due(delivery.run_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.COMPLETED and delivery.attempts == 1
    assert len(fake_fcm.messages()) == 1


def test_a_delivery_whose_worker_always_dies_fails_with_its_reason(
    scheduled, claim_only, fake_fcm, settings
):
    """Each time a worker starts it and dies (its lease expires unfinished); after the
    bounded attempts it fails, and so does its notification — with the reason."""
    campaign, delivery = scheduled(contents=1)
    for _ in range(settings.JOB_MAX_ATTEMPTS):
        [(token, ids)] = claim_only(delivery.run_at)
        services._start(uuid.UUID(token), ids, timezone.now())  # started... and the worker dies
        Delivery.objects.filter(pk=delivery.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert reclaim_expired_leases() == 1
    [(token, ids)] = claim_only(delivery.run_at)
    assert services.run_batch(token, ids) == {}  # finished at start, nothing sent
    delivery.refresh_from_db()
    campaign.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error.startswith("GAVE_UP")
    notification = Notification.objects.get(delivery=delivery)
    assert notification.status == "failed" and notification.error_code == "GAVE_UP"
    assert notification.error_message.startswith("GAVE_UP: 5 attempts")
    assert campaign.status == "failed" and fake_fcm.messages() == []


def test_a_superseded_claim_cannot_write(scheduled, claim_only, run_due, fake_fcm):
    _, delivery = scheduled(contents=1)
    [(old_token, ids)] = claim_only(delivery.run_at)  # its message is "lost"
    Delivery.objects.filter(pk=delivery.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert reclaim_expired_leases() == 1
    run_due(delivery.run_at)
    assert services.run_batch(old_token, ids) == {"ignored": 1}  # the lost message turns up
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.COMPLETED and len(fake_fcm.messages()) == 1


def test_missed_occurrences_beyond_the_window_are_skipped(scheduled, run_due, fake_fcm):
    campaign, delivery = scheduled(contents=1)
    # The service was down: it is now two hours after the run time.
    past = timezone.now() - timedelta(hours=2)
    Delivery.objects.filter(pk=delivery.pk).update(run_at=past, due_at=past)
    run_due(timezone.now())
    delivery.refresh_from_db()
    campaign.refresh_from_db()
    assert delivery.status == DeliveryStatus.SKIPPED and delivery.last_error.startswith("MISSED")
    assert campaign.status == "failed" and fake_fcm.messages() == []


def test_a_late_run_within_the_window_is_sent(scheduled, run_due, fake_fcm):
    _, delivery = scheduled(contents=1)
    late = timezone.now() - timedelta(minutes=10)
    Delivery.objects.filter(pk=delivery.pk).update(run_at=late, due_at=late)
    run_due(timezone.now())
    assert len(fake_fcm.messages()) == 1


def test_a_campaign_no_longer_sendable_is_skipped(scheduled, claim_only, fake_fcm):
    campaign, delivery = scheduled(contents=1)
    [(token, ids)] = claim_only(delivery.run_at)
    Campaign.objects.filter(pk=campaign.pk).update(status="draft")  # changed under the claim
    assert services.run_batch(token, ids) == {}
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SKIPPED and "draft" in delivery.last_error
    assert fake_fcm.messages() == []


def test_cancelling_withdraws_a_claimed_delivery(scheduled, claim_only, fake_fcm, owner):
    campaign, delivery = scheduled(contents=1)
    [(token, ids)] = claim_only(delivery.run_at)
    campaigns.cancel_campaign(campaign=campaign, actor=owner)
    assert services.run_batch(token, ids) == {"ignored": 1}
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.CANCELLED
    assert fake_fcm.messages() == []


def test_a_daily_campaign_across_a_dst_change(scheduled, run_due, fake_fcm):
    # Europe/Paris moves to summer time on 2027-03-28: 09:00 local is 08:00Z, then 07:00Z.
    paris_9am = datetime(2027, 3, 27, 8, 0, tzinfo=UTC)
    campaign, _ = scheduled(
        contents=1, at=paris_9am, timezone_name="Europe/Paris", rrule="FREQ=DAILY;COUNT=3"
    )
    runs = []
    for _ in range(3):
        delivery = Delivery.objects.filter(campaign=campaign, status="pending").earliest("run_at")
        runs.append(delivery.run_at)
        [(token, ids)] = run_due(delivery.run_at)
        # A second run of the same batch (a duplicate message) changes nothing.
        assert services.run_batch(token, ids) == {"ignored": 1}
        refill_plans(now=delivery.run_at)  # the dispatcher loop keeps the plan filled
    assert runs == [
        datetime(2027, 3, 27, 8, 0, tzinfo=UTC),
        datetime(2027, 3, 28, 7, 0, tzinfo=UTC),
        datetime(2027, 3, 29, 7, 0, tzinfo=UTC),
    ]
    campaign.refresh_from_db()
    assert campaign.status == "completed" and len(fake_fcm.messages()) == 3
    assert Occurrence.objects.filter(campaign=campaign).count() == 3


def test_several_deliveries_of_one_occurrence_run_together(scheduled, run_due, fake_fcm):
    """The engine runs an occurrence sent as several deliveries (a zone, a language, a
    variant each, in later issues): each to its own target, the campaign settling once."""
    campaign, delivery = scheduled(contents=2)
    for slice_, topic in (("b", "news-b"), ("c", "news-c")):
        Delivery.objects.create(
            workspace=campaign.workspace, campaign=campaign, occurrence=delivery.occurrence,
            slice=slice_, topic=topic, run_at=delivery.run_at, due_at=delivery.run_at,
        )  # fmt: skip
    run_due(delivery.run_at)
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "completed"
    }
    topics = sorted(m["message"]["topic"] for m in fake_fcm.messages())
    assert topics == ["news", "news", "news-b", "news-b", "news-c", "news-c"]
    assert Notification.objects.filter(campaign=campaign, status="sent").count() == 6
    campaign.refresh_from_db()
    assert campaign.status == "completed"


def test_consecutive_occurrences_due_together_both_run(scheduled, run_due, fake_fcm):
    campaign, _ = scheduled(contents=1, rrule="FREQ=HOURLY;COUNT=3")
    first, second = Delivery.objects.filter(campaign=campaign).order_by("run_at")[:2]
    run_due(second.run_at + timedelta(seconds=1))  # a short outage: both are due now
    assert {d.status for d in Delivery.objects.filter(pk__in=[first.pk, second.pk])} == {
        "completed"
    }
    campaign.refresh_from_db()
    assert campaign.status == "scheduled" and len(fake_fcm.messages()) == 2
    third = Delivery.objects.get(campaign=campaign, status="pending")
    assert campaign.next_run_at == third.run_at


def test_claims_are_fair_across_workspaces(connected_workspace, make_workspace, claim_only):
    """Workspace A has 30 deliveries due, B one, all at the same instant: B's is claimed in
    the first round and travels in the first batch."""
    other = make_workspace(name="Other")
    at = timezone.now() - timedelta(seconds=1)
    make_due_campaigns(connected_workspace, 30, at=at)
    [b_delivery] = make_due_campaigns(other, 1, at=at)
    batches = claim_only(at, limit=10)
    claimed = [pk for _, ids in batches for pk in ids]
    assert len(claimed) == 10 and str(b_delivery.pk) in batches[0][1]
    # Unused shares go to the others: A gets the nine B cannot use.
    assert Delivery.objects.filter(workspace=connected_workspace, status="queued").count() == 9


def test_unschedule_edit_schedule_leaves_nothing_of_the_old_plan(
    scheduled, owner, run_due, fake_fcm
):
    campaign, first = scheduled(contents=1, rrule="FREQ=HOURLY;COUNT=5")
    assert Delivery.objects.filter(campaign=campaign).count() == 5  # within the horizon
    campaigns.unschedule_campaign(campaign=campaign, actor=owner)
    assert not Delivery.objects.filter(campaign=campaign).exists()
    assert not Occurrence.objects.filter(campaign=campaign).exists()
    campaign = Campaign.objects.get(pk=campaign.pk)
    start = first.run_at + timedelta(minutes=30)
    campaigns.update_campaign(
        campaign=campaign, actor=owner, rrule="FREQ=HOURLY;COUNT=2", scheduled_at=start,
        contents=[{"title": "New copy"}],
    )  # fmt: skip
    campaigns.schedule_campaign(campaign=Campaign.objects.get(pk=campaign.pk), actor=owner)
    runs = list(Delivery.objects.filter(campaign=campaign).values_list("run_at", flat=True))
    assert runs == [start, start + timedelta(hours=1)]
    run_due(start + timedelta(hours=2))
    assert [m["message"]["notification"]["title"] for m in fake_fcm.messages()] == ["New copy"] * 2


def test_the_plan_is_idempotent(scheduled, settings):
    campaign, _ = scheduled(contents=1, rrule="FREQ=DAILY;COUNT=30")
    settings.PLAN_HORIZON_SECONDS = 40 * 86400
    settings.PLAN_BATCH_SIZE = 7
    at = timezone.now()
    for _ in range(10):  # more passes than needed, and again once complete
        refill_plans(now=at)
    assert Delivery.objects.filter(campaign=campaign).count() == 30
    assert Occurrence.objects.filter(campaign=campaign, is_last=True).count() == 1
    assert len(set(Delivery.objects.filter(campaign=campaign).values_list("run_at"))) == 30


def test_the_notification_lists(api, scheduled, run_due, fake_fcm):
    campaign, delivery = scheduled(contents=2)
    run_due(delivery.run_at)
    listed = api.get("/api/v1/notifications?status=sent").json()
    assert len(listed["results"]) == 2
    by_campaign = api.get(f"/api/v1/campaigns/{campaign.pk}/notifications").json()
    assert {row["title"] for row in by_campaign["results"]} == {"Title 0", "Title 1"}
    assert {row["delivery"] for row in by_campaign["results"]} == {str(delivery.pk)}
    assert api.get("/api/v1/notifications?status=failed").json()["results"] == []
    assert (
        api.get(
            f"/api/v1/notifications?campaign={campaign.pk}&sent_from=2999-01-01T00:00:00Z"
        ).json()["results"]
        == []
    )
    jobs = api.get(f"/api/v1/campaigns/{campaign.pk}/jobs").json()["results"]
    assert [(j["id"], j["status"], j["target"]) for j in jobs] == [
        (str(delivery.pk), "completed", {"topic": "news"})
    ]


def test_dispatch_lookahead_claims_early_and_sends_on_time(
    connected_workspace, run_due, fake_fcm, settings
):
    settings.DISPATCH_LOOKAHEAD_SECONDS = 0.5
    at = timezone.now() + timedelta(seconds=0.4)
    [delivery] = make_due_campaigns(connected_workspace, 1, at=at)
    assert run_due(timezone.now() - timedelta(seconds=0.2)) == []  # not within the lookahead
    assert len(run_due(timezone.now())) == 1  # claimed ahead of its time...
    [message] = fake_fcm.messages()
    assert message["received_at"] >= at.timestamp()  # ...and sent no earlier than it
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.COMPLETED


def test_claims_stop_while_the_backlog_is_full(connected_workspace, claim_only, settings):
    settings.DISPATCH_MAX_QUEUED, settings.DISPATCH_CLAIM_SIZE = 5, 3
    at = timezone.now() - timedelta(seconds=1)
    make_due_campaigns(connected_workspace, 12, at=at)
    assert claim_limit() == 3  # the claim size
    claim_only(at, limit=claim_limit())
    assert claim_limit() == 2  # what is left of the backlog's room
    claim_only(at, limit=claim_limit())
    assert claim_limit() == 0  # no worker took any: no more claims
    assert Delivery.objects.filter(status="queued").count() == 5


@pytest.mark.postgres
def test_a_dispatchers_kept_count_never_hides_due_deliveries(
    connected_workspace, make_workspace, claim_only
):
    """The dispatcher recounts due deliveries at most once a tick; a workspace that becomes
    due in between is still claimed as soon as the other claims come back short."""
    at = timezone.now() - timedelta(seconds=1)
    make_due_campaigns(connected_workspace, 5, at=at)
    counts = DueCounts()
    assert len(claim_only(at, limit=3, counts=counts)[0][1]) == 3  # counted: A has 5
    [late] = make_due_campaigns(make_workspace(name="Late"), 1, at=at)
    assert counts.fresh() and str(late.workspace_id) not in {str(w) for w in counts.due}
    [(_, ids)] = claim_only(at, limit=10, counts=counts)
    assert len(ids) == 3 and str(late.pk) in ids  # A's last two, and the newcomer's one


def test_check_dispatcher_says_whether_this_hosts_dispatcher_is_alive(db, settings):
    import socket

    from django.core.management import CommandError, call_command

    from apps.notifications.dispatcher import beat

    with pytest.raises(CommandError, match="no dispatcher"):
        call_command("check_dispatcher")
    beat(f"{socket.gethostname()}:1", now=timezone.now() - timedelta(seconds=120))
    with pytest.raises(CommandError, match=r"12[0-9] s ago"):
        call_command("check_dispatcher")
    beat(f"{socket.gethostname()}:1")
    call_command("check_dispatcher")


def test_a_deleted_workspace_sends_nothing_more(
    scheduled, run_due, claim_only, fake_fcm, connected_workspace, owner
):
    from apps.workspaces.services import delete_workspace

    recurring, first = scheduled(contents=1, rrule="FREQ=HOURLY;COUNT=5")
    _, claimed = scheduled(contents=1)  # already claimed when the workspace goes
    [(token, claimed_ids)] = claim_only(claimed.run_at)

    delete_workspace(workspace=connected_workspace, actor=owner)

    recurring.refresh_from_db()
    assert recurring.status == "cancelled"
    assert not Delivery.objects.filter(
        campaign__workspace=connected_workspace, status__in=("pending", "queued")
    ).exists()
    # Claims taken before the deletion were cancelled with the rest: a worker ignores them.
    assert services.run_batch(token, claimed_ids) == {"ignored": len(claimed_ids)}
    assert run_due(first.run_at + timedelta(days=1)) == []
    assert not refill_plans(now=first.run_at)
    assert fake_fcm.messages() == []


def test_a_send_started_before_the_workspace_is_deleted_sends_nothing(
    scheduled, claim_only, fake_fcm, connected_workspace
):
    """The race: a batch claimed while the workspace existed starts after its deletion
    (the deletion's cancel missed it): the engine skips it instead of sending."""
    _, delivery = scheduled(contents=1)
    [(token, ids)] = claim_only(delivery.run_at)
    connected_workspace.mark_deleted()  # without the service's cancel: the worst case
    services.run_batch(token, ids)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SKIPPED
    assert delivery.last_error == "The workspace is deleted."
    assert fake_fcm.messages() == []
