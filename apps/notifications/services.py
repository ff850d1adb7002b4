"""Running one scheduled job: the sending engine's business rules.

A job is owned by one attempt at a time. The dispatcher's claim gives it a new attempt
number; `run_job(job_id, attempt)` starts only if the job is still queued for that attempt
(a duplicate or stale task delivery does nothing), and every later write — lease renewal,
each notification's progress, the finish — is conditional on that attempt, so a worker that
lost its lease (and was superseded) cannot change anything.

Per content there is one Notification row (unique per job and content). It moves
pending -> sending -> sent | failed by conditional updates; a re-run skips what is sent and
re-sends what was `sending` when the previous attempt died — with the same collapse
identity (the notification id), so a device shows it once.

Retries: only FCM outcomes that can succeed later are retried, after the delay the client
reports. Short delays re-enqueue the task with a Celery countdown; longer ones put the job
back to pending with `retry_at` (a Redis-broker countdown outliving the visibility timeout
would be redelivered). After JOB_MAX_ATTEMPTS the job fails with the last reason.

Catch-up: a job that starts more than the campaign's `catch_up_window_seconds` after its
run_at (the service was down) is skipped, not sent late; a recurring campaign moves on to
its next occurrence, a one-off campaign fails with the reason.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from apps.analytics.rollups import record_notification_outcome
from apps.campaigns import services as campaigns
from apps.campaigns.models import CampaignStatus
from apps.common import audit
from apps.common.errors import InvalidTransition
from apps.common.logging import get_logger
from apps.integrations.firebase.client import FcmClient, FcmError
from apps.integrations.firebase.selectors import get_config, service_account_of
from apps.integrations.firebase.validation import MessageInvalid
from apps.notifications.metrics import (
    dispatch_lateness_seconds,
    notifications_failed_total,
    notifications_sent_total,
)
from apps.notifications.models import (
    JobStatus,
    Notification,
    NotificationStatus,
    ScheduledJob,
)

logger = get_logger("pushpilot.sending")

FINAL = (NotificationStatus.SENT, NotificationStatus.FAILED)


@dataclass(frozen=True)
class GiveUp:
    """Why a job stops for good: the code stored on its unsent notifications, and a reason."""

    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class JobLost(Exception):
    """This attempt no longer owns the job (its lease expired and another attempt took it)."""


def run_job(job_id: str, attempt: int) -> str:
    """Run one attempt of a job; return what became of it (for logs and tests)."""
    now = timezone.now()
    started = ScheduledJob.objects.filter(
        pk=job_id, status=JobStatus.QUEUED, attempt=attempt
    ).update(
        status=JobStatus.RUNNING,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        updated_at=now,
    )
    if not started:
        logger.info("job_delivery_ignored", job_id=job_id, attempt=attempt)
        return "ignored"
    job = ScheduledJob.objects.select_related("campaign", "workspace").get(pk=job_id)
    campaign = job.campaign
    dispatch_lateness_seconds.observe(max(0.0, (now - job.run_at).total_seconds()))
    log = logger.bind(
        job_id=job_id,
        attempt=attempt,
        campaign_id=str(campaign.pk),
        workspace_id=str(job.workspace_id),
    )
    try:
        if campaign.is_deleted or campaign.status not in (
            CampaignStatus.SCHEDULED,
            CampaignStatus.RUNNING,
        ):
            return _skip(
                job,
                attempt,
                f"The campaign is {'deleted' if campaign.is_deleted else campaign.status}.",
            )
        window = campaign.catch_up_window_seconds
        if window is not None and (now - job.run_at).total_seconds() > window:
            return _skip_missed(job, attempt, now)
        if campaign.status == CampaignStatus.SCHEDULED:
            try:
                job.campaign = campaign = campaigns.start_run(campaign=campaign)
            except InvalidTransition:
                return _skip(job, attempt, "The campaign changed state before the run started.")
        if attempt > settings.JOB_MAX_ATTEMPTS:  # the lease kept expiring: a worker keeps dying
            return _finish(
                job,
                attempt,
                give_up=GiveUp("GAVE_UP", f"{attempt - 1} attempts; last: {job.last_error}"),
            )
        config = get_config(job.workspace)
        if config is None:
            return _finish(
                job,
                attempt,
                give_up=GiveUp("FIREBASE_NOT_CONNECTED", "no Firebase project is connected."),
            )
        outcome = _send_all(job, attempt, FcmClient(service_account_of(config)))
        log.info("job_finished", outcome=outcome)
        return outcome
    except JobLost:
        log.warning("job_lost", detail="the lease expired and another attempt owns the job")
        return "lost"


def _send_all(job: ScheduledJob, attempt: int, client: FcmClient) -> str:
    lease_fresh = True  # run_job has just set it
    for notification in _notifications_for(job, attempt):
        if notification.status in FINAL:
            continue  # sent (or refused for good) by an earlier attempt
        if not lease_fresh:
            _renew_lease(job, attempt)
        lease_fresh = False
        if notification.content is None:
            _mark_failed(notification, attempt, "CONTENT_DELETED", "The content was deleted.")
            continue
        _mark_sending(notification, attempt)
        try:
            message = campaigns.message_for(
                job.campaign, notification.content, notification_id=notification.pk
            )
            name = client.send(message, attempt=attempt)
        except MessageInvalid as exc:
            _mark_failed(notification, attempt, "INVALID_ARGUMENT", exc.message)
        except FcmError as exc:
            if exc.retryable:
                return _retry(job, attempt, exc)
            _mark_failed(notification, attempt, exc.error_code, exc.message)
        else:
            _mark_sent(notification, attempt, name)
    return _finish(job, attempt)


def _notifications_for(job: ScheduledJob, attempt: int) -> list[Notification]:
    """The job's rows, one per content, owned by `attempt`: created on the first attempt,
    found (and taken over, where unfinished) on a re-run."""
    contents = list(job.campaign.contents.order_by("position"))
    existing = {row.content_id: row for row in Notification.objects.filter(job=job)}
    missing = [
        Notification(
            workspace_id=job.workspace_id,
            campaign_id=job.campaign_id,
            job=job,
            content=content,
            position=content.position,
            title=content.title,
            body=content.subtitle,
            attempt=attempt,
        )
        for content in contents
        if content.pk not in existing
    ]
    # A superseded attempt racing this one makes a row conflict; the ids it kept are then
    # not ours, its writes match nothing, and this attempt ends as JobLost — never a double send.
    Notification.objects.bulk_create(missing, ignore_conflicts=True)
    unfinished = [row.pk for row in existing.values() if row.status not in FINAL]
    if unfinished:
        Notification.objects.filter(pk__in=unfinished).exclude(status__in=FINAL).update(
            attempt=attempt, updated_at=timezone.now()
        )
    by_content = {content.pk: content for content in contents}
    rows = [*existing.values(), *missing]
    for row in rows:
        row.attempt = attempt if row.status not in FINAL else row.attempt
        row.content = by_content.get(row.content_id)
    return sorted(rows, key=lambda row: row.position)


def _renew_lease(job: ScheduledJob, attempt: int) -> None:
    now = timezone.now()
    renewed = ScheduledJob.objects.filter(
        pk=job.pk, status=JobStatus.RUNNING, attempt=attempt
    ).update(lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS), updated_at=now)
    if not renewed:
        raise JobLost()


def _owned(notification: Notification, attempt: int, *statuses: str):
    return Notification.objects.filter(pk=notification.pk, attempt=attempt, status__in=statuses)


def _mark_sending(notification: Notification, attempt: int) -> None:
    if not _owned(
        notification, attempt, NotificationStatus.PENDING, NotificationStatus.SENDING
    ).update(status=NotificationStatus.SENDING, updated_at=timezone.now()):
        raise JobLost()


@transaction.atomic
def _mark_sent(notification: Notification, attempt: int, message_name: str) -> None:
    now = timezone.now()
    if not _owned(notification, attempt, NotificationStatus.SENDING).update(
        status=NotificationStatus.SENT,
        fcm_message_id=message_name,
        sent_at=now,
        error_code="",
        error_message="",
        updated_at=now,
    ):
        raise JobLost()
    _count(notification, NotificationStatus.SENT, now)


@transaction.atomic
def _mark_failed(notification: Notification, attempt: int, code: str, message: str) -> None:
    now = timezone.now()
    if not _owned(
        notification, attempt, NotificationStatus.PENDING, NotificationStatus.SENDING
    ).update(
        status=NotificationStatus.FAILED,
        error_code=code[:64],
        error_message=message[:2000],
        updated_at=now,
    ):
        raise JobLost()
    _count(notification, NotificationStatus.FAILED, now, code)


def _count(notification: Notification, status: str, at: datetime, code: str = "") -> None:
    """The hourly rollup in the same transaction as the status change (which happens once
    per notification); metrics after commit (a rolled-back write was never sent or failed)."""
    record_notification_outcome(notification, status, at)
    if status == NotificationStatus.SENT:
        transaction.on_commit(notifications_sent_total.inc)
    else:
        transaction.on_commit(lambda: notifications_failed_total.labels(code or "UNKNOWN").inc())


def _retry(job: ScheduledJob, attempt: int, error: FcmError) -> str:
    from apps.notifications.tasks import run_campaign_job

    if attempt >= settings.JOB_MAX_ATTEMPTS:
        reason = f"gave up after {attempt} attempts: {error.message}"
        return _finish(job, attempt, give_up=GiveUp(error.error_code, reason))
    now = timezone.now()
    delay = max(0.0, error.retry_after or 0.0)
    owned = ScheduledJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempt=attempt)
    with transaction.atomic():
        if delay <= settings.RETRY_COUNTDOWN_MAX_SECONDS:
            moved = owned.update(
                status=JobStatus.QUEUED,
                attempt=attempt + 1,
                last_error=str(error)[:2000],
                lease_expires_at=now
                + timedelta(seconds=delay + settings.JOB_QUEUE_TIMEOUT_SECONDS),
                updated_at=now,
            )
            if moved:
                transaction.on_commit(
                    lambda: run_campaign_job.apply_async(
                        args=(str(job.pk), attempt + 1), countdown=delay
                    )
                )
        else:
            moved = owned.update(
                status=JobStatus.PENDING,
                retry_at=now + timedelta(seconds=delay),
                lease_expires_at=None,
                last_error=str(error)[:2000],
                updated_at=now,
            )
        if not moved:
            raise JobLost()
        audit.record(
            "job.retry_scheduled",
            workspace=job.workspace,
            target=job,
            metadata={
                "attempt": attempt,
                "error_code": error.error_code,
                "retry_in_seconds": delay,
            },
        )
    return "retrying"


def _finish(job: ScheduledJob, attempt: int, *, give_up: GiveUp | None = None) -> str:
    """Close the job and move the campaign on, in one transaction (conditional on the
    attempt, so a second completion does nothing)."""
    now = timezone.now()
    with transaction.atomic():
        if give_up:
            for notification in Notification.objects.filter(job=job, attempt=attempt).exclude(
                status__in=FINAL
            ):
                _mark_failed(notification, attempt, give_up.code, give_up.reason)
        counts = Notification.objects.filter(job=job).aggregate(
            sent=Count("pk", filter=Q(status=NotificationStatus.SENT)),
            failed=Count("pk", filter=Q(status=NotificationStatus.FAILED)),
        )
        failed = give_up is not None or (counts["sent"] == 0 and counts["failed"] > 0)
        closed = ScheduledJob.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, attempt=attempt
        ).update(
            status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
            finished_at=now,
            lease_expires_at=None,
            last_error=(str(give_up) if give_up else _failure_summary(job))[:2000],
            updated_at=now,
        )
        if not closed:
            raise JobLost()
        _move_campaign_on(job, succeeded=not failed, now=now)
        audit.record(
            "job.failed" if failed else "job.completed",
            workspace=job.workspace,
            target=job,
            metadata={
                "attempt": attempt,
                **counts,
                **({"reason": str(give_up)} if give_up else {}),
            },
        )
    return "failed" if failed else "completed"


def _failure_summary(job: ScheduledJob) -> str:
    failures = Notification.objects.filter(job=job, status=NotificationStatus.FAILED)
    return "; ".join(f"#{n.position}: {n.error_code} {n.error_message}" for n in failures)


def _move_campaign_on(job: ScheduledJob, *, succeeded: bool, now: datetime) -> None:
    campaign = job.campaign
    if campaign.status != CampaignStatus.RUNNING:
        return  # never started (skipped before start_run)
    # A recurring campaign goes on to its next occurrence even when one run failed; the
    # failed job says why. A one-off campaign ends failed or completed.
    recurring = bool(campaign.rrule)
    campaigns.finish_run(
        campaign=campaign, run_at=job.run_at, succeeded=succeeded or recurring, now=now
    )


def _skip(job: ScheduledJob, attempt: int, reason: str) -> str:
    now = timezone.now()
    with transaction.atomic():
        skipped = ScheduledJob.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, attempt=attempt
        ).update(
            status=JobStatus.SKIPPED,
            finished_at=now,
            lease_expires_at=None,
            last_error=reason,
            updated_at=now,
        )
        if not skipped:
            raise JobLost()
        audit.record(
            "job.skipped", workspace=job.workspace, target=job, metadata={"reason": reason}
        )
    logger.info("job_skipped", job_id=str(job.pk), reason=reason)
    return "skipped"


def _skip_missed(job: ScheduledJob, attempt: int, now: datetime) -> str:
    """Outside the catch-up window: record the occurrence as skipped and move on."""
    late = int((now - job.run_at).total_seconds())
    reason = (
        f"MISSED: started {late} s after its time, beyond the campaign's catch-up window "
        f"of {job.campaign.catch_up_window_seconds} s."
    )
    with transaction.atomic():
        result = _skip(job, attempt, reason)
        campaign = job.campaign
        if campaign.status == CampaignStatus.SCHEDULED:
            campaign = campaigns.start_run(campaign=campaign)
            campaigns.finish_run(
                campaign=campaign, run_at=job.run_at, succeeded=bool(campaign.rrule), now=now
            )
    return result
