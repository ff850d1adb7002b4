"""The sending engine end to end in eager mode: dispatcher claim -> task -> fake FCM."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign
from apps.common.models import AuditLog
from apps.notifications import services
from apps.notifications.dispatcher import claim_due_jobs, reclaim_expired_leases
from apps.notifications.metrics import notifications_failed_total, notifications_sent_total
from apps.notifications.models import JobStatus, Notification, ScheduledJob


@pytest.fixture
def run_due(django_capture_on_commit_callbacks):
    """Claim what is due at `at` and run the enqueued tasks (eager), retries included."""

    def _run(at: datetime) -> list:
        with django_capture_on_commit_callbacks(execute=True):
            return claim_due_jobs(now=at)

    return _run


@pytest.fixture
def scheduled(connected_workspace, owner):
    """Create and schedule a campaign; returns (campaign, its first job)."""

    def _make(contents=2, at=None, **fields):
        start = at or (timezone.now() + timedelta(minutes=5)).replace(microsecond=0)
        campaign = campaigns.create_campaign(
            workspace=connected_workspace,
            actor=owner,
            name="Launch",
            topic=fields.pop("topic", "news"),
            contents=[{"title": f"Title {i}", "subtitle": f"Body {i}"} for i in range(contents)],
            **fields,
        )
        campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=start)
        return Campaign.objects.get(pk=campaign.pk), ScheduledJob.objects.get(campaign=campaign)

    return _make


def test_a_campaign_is_sent_once_per_content_and_completes(scheduled, run_due, fake_fcm):
    campaign, job = scheduled(contents=2)
    sent_before = notifications_sent_total._value.get()
    assert run_due(job.run_at - timedelta(seconds=1)) == []  # not due yet
    assert run_due(job.run_at) == [(str(job.pk), 1)]

    job.refresh_from_db()
    campaign.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.attempt == 1
    assert campaign.status == "completed" and campaign.last_run_at == job.run_at
    notifications = list(Notification.objects.filter(job=job).order_by("position"))
    assert [n.status for n in notifications] == ["sent", "sent"]
    received = fake_fcm.messages("demo-project")
    assert [m["message"]["notification"]["title"] for m in received] == ["Title 0", "Title 1"]
    for notification, message in zip(notifications, received, strict=True):
        collapse = notification.pk.hex
        assert message["message"]["apns"]["headers"]["apns-collapse-id"] == collapse
        assert message["message"]["android"]["notification"]["tag"] == collapse
        assert notification.fcm_message_id.endswith(message["message_id"])
        # The app reports opens with these (POST /events).
        assert message["message"]["data"]["pushpilot_notification_id"] == str(notification.pk)
        assert message["message"]["data"]["pushpilot_campaign_id"] == str(campaign.pk)
    assert notifications_sent_total._value.get() == sent_before + 2
    assert AuditLog.objects.filter(action="job.completed", target_id=str(job.pk)).exists()
    assert run_due(job.run_at + timedelta(hours=1)) == []  # nothing left


def test_a_duplicate_or_stale_delivery_does_nothing(scheduled, run_due, fake_fcm):
    _, job = scheduled(contents=1)
    run_due(job.run_at)
    assert services.run_job(str(job.pk), 1) == "ignored"
    assert services.run_job(str(job.pk), 7) == "ignored"
    assert len(fake_fcm.messages()) == 1


def test_unavailable_twice_then_ok_delivers_once(scheduled, run_due, fake_fcm):
    _, job = scheduled(contents=2)
    fake_fcm.inject(
        {"kind": "unavailable", "retry_after": 0}, {"kind": "unavailable", "retry_after": 0}
    )
    run_due(job.run_at)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.attempt == 3
    assert len(fake_fcm.messages()) == 2  # one delivery per content
    assert fake_fcm.send_requests == 4
    assert Notification.objects.filter(job=job, status="sent").count() == 2


def test_a_long_retry_after_goes_back_to_the_database(scheduled, run_due, fake_fcm):
    _, job = scheduled(contents=1)
    fake_fcm.inject({"kind": "quota", "retry_after": 120})
    before = timezone.now()
    run_due(job.run_at)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and "QUOTA_EXCEEDED" in job.last_error
    assert (
        before + timedelta(seconds=119) <= job.retry_at <= timezone.now() + timedelta(seconds=121)
    )
    # The job keeps its run_at (the occurrence) and waits until retry_at as well.
    ScheduledJob.objects.filter(pk=job.pk).update(run_at=before - timedelta(seconds=5))
    assert run_due(job.retry_at - timedelta(seconds=1)) == []  # not yet
    assert run_due(job.retry_at) == [(str(job.pk), 2)]
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and len(fake_fcm.messages()) == 1


@pytest.mark.parametrize(
    "kind,code", [("unregistered", "UNREGISTERED"), ("invalid_argument", "INVALID_ARGUMENT")]
)
def test_permanent_errors_are_not_retried(scheduled, run_due, fake_fcm, kind, code):
    campaign, job = scheduled(contents=1)
    failed_before = notifications_failed_total.labels(code)._value.get()
    fake_fcm.inject({"kind": kind})
    run_due(job.run_at)
    job.refresh_from_db()
    campaign.refresh_from_db()
    assert fake_fcm.send_requests == 1
    assert job.status == JobStatus.FAILED and code in job.last_error
    assert campaign.status == "failed"
    notification = Notification.objects.get(job=job)
    assert notification.status == "failed" and notification.error_code == code
    assert notifications_failed_total.labels(code)._value.get() == failed_before + 1
    assert AuditLog.objects.filter(action="job.failed", target_id=str(job.pk)).exists()


def test_one_content_failing_does_not_stop_the_others(scheduled, run_due, fake_fcm):
    _, job = scheduled(contents=2)
    fake_fcm.inject({"kind": "invalid_argument"})
    run_due(job.run_at)
    job.refresh_from_db()
    assert [n.status for n in Notification.objects.filter(job=job).order_by("position")] == [
        "failed",
        "sent",
    ]
    assert job.status == JobStatus.COMPLETED and "INVALID_ARGUMENT" in job.last_error


def test_a_job_that_always_fails_stops_after_the_bounded_attempts(
    scheduled, run_due, fake_fcm, settings
):
    campaign, job = scheduled(contents=1)
    fake_fcm.inject(*[{"kind": "unavailable", "retry_after": 0}] * 10)
    run_due(job.run_at)
    job.refresh_from_db()
    campaign.refresh_from_db()
    assert fake_fcm.send_requests == settings.JOB_MAX_ATTEMPTS
    assert job.status == JobStatus.FAILED and "gave up after" in job.last_error
    assert campaign.status == "failed"
    assert Notification.objects.get(job=job).status == "failed"


def test_a_superseded_attempt_cannot_write(scheduled, run_due, fake_fcm):
    _, job = scheduled(contents=1)
    claim_due_jobs(now=job.run_at)  # attempt 1 queued, its task "lost"
    ScheduledJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert reclaim_expired_leases() == 1
    assert run_due(job.run_at) == [(str(job.pk), 2)]
    assert services.run_job(str(job.pk), 1) == "ignored"  # the lost message turns up late
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and len(fake_fcm.messages()) == 1


def test_missed_occurrences_beyond_the_window_are_skipped(scheduled, run_due, fake_fcm):
    campaign, job = scheduled(contents=1)
    # The service was down: it is now two hours after the run time.
    past = timezone.now() - timedelta(hours=2)
    ScheduledJob.objects.filter(pk=job.pk).update(run_at=past)
    run_due(timezone.now())
    job.refresh_from_db()
    campaign.refresh_from_db()
    assert job.status == JobStatus.SKIPPED and job.last_error.startswith("MISSED")
    assert campaign.status == "failed" and fake_fcm.messages() == []


def test_a_late_run_within_the_window_is_sent(scheduled, run_due, fake_fcm):
    _, job = scheduled(contents=1)
    ScheduledJob.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(minutes=10))
    run_due(timezone.now())
    assert len(fake_fcm.messages()) == 1


def test_cancelled_campaigns_are_not_sent(scheduled, run_due, fake_fcm, owner):
    campaign, job = scheduled(contents=1)
    claim_due_jobs(now=job.run_at)  # claimed, then the user cancels... too late to cancel the job
    campaign.status = "scheduled"
    Campaign.objects.filter(pk=campaign.pk).update(status="cancelled")
    assert services.run_job(str(job.pk), 1) == "skipped"
    assert fake_fcm.messages() == []


def test_a_daily_campaign_across_a_dst_change(scheduled, run_due, fake_fcm, owner):
    # Europe/Paris moves to summer time on 2027-03-28: 09:00 local is 08:00Z, then 07:00Z.
    paris_9am = datetime(2027, 3, 27, 8, 0, tzinfo=UTC)
    campaign, job = scheduled(
        contents=1, at=paris_9am, timezone_name="Europe/Paris", rrule="FREQ=DAILY;COUNT=3"
    )
    runs = []
    for _ in range(3):
        job = ScheduledJob.objects.filter(campaign=campaign, status="pending").get()
        runs.append(job.run_at)
        run_due(job.run_at)
        # A second completion (a duplicate delivery) changes nothing: still one next job.
        assert services.run_job(str(job.pk), 1) == "ignored"
        assert ScheduledJob.objects.filter(campaign=campaign, status="pending").count() <= 1
    assert runs == [
        datetime(2027, 3, 27, 8, 0, tzinfo=UTC),
        datetime(2027, 3, 28, 7, 0, tzinfo=UTC),
        datetime(2027, 3, 29, 7, 0, tzinfo=UTC),
    ]
    campaign.refresh_from_db()
    assert campaign.status == "completed" and len(fake_fcm.messages()) == 3


def test_the_notification_lists(api, scheduled, run_due, fake_fcm, connected_workspace):
    campaign, job = scheduled(contents=2)
    run_due(job.run_at)
    listed = api.get("/api/v1/notifications?status=sent").json()
    assert listed["count"] == 2
    by_campaign = api.get(f"/api/v1/campaigns/{campaign.pk}/notifications").json()
    assert {row["title"] for row in by_campaign["results"]} == {"Title 0", "Title 1"}
    assert api.get("/api/v1/notifications?status=failed").json()["count"] == 0
    assert (
        api.get(
            f"/api/v1/notifications?campaign={campaign.pk}&sent_from=2999-01-01T00:00:00Z"
        ).json()["count"]
        == 0
    )
