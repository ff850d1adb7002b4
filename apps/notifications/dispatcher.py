"""Claiming due jobs, and returning abandoned ones.

A claim is one transaction: select due pending jobs (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so any number of dispatchers split the work without waiting on each other),
mark them queued with a new attempt number and a short lease, and enqueue their tasks only
after commit. On SQLite the transaction takes the write lock up front (IMMEDIATE), which
serialises claims; the status condition in the UPDATE makes a double claim impossible either way.
"""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from apps.common.logging import get_logger
from apps.notifications.metrics import jobs_claimed_total, jobs_reclaimed_total
from apps.notifications.models import ACTIVE_JOB_STATUSES, JobStatus, ScheduledJob

logger = get_logger("pushpilot.dispatcher")


def _due(now: datetime):
    return ScheduledJob.objects.filter(status=JobStatus.PENDING, run_at__lte=now).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    )


def claim_due_jobs(
    *, now: datetime | None = None, limit: int | None = None
) -> list[tuple[str, int]]:
    """Claim up to `limit` due jobs; return (job id, attempt) pairs, enqueued after commit."""
    from apps.notifications.tasks import run_campaign_job

    now = now or timezone.now()
    limit = limit or settings.DISPATCH_BATCH_SIZE
    with transaction.atomic():
        due = _due(now).order_by("run_at")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        candidates = list(due.values_list("pk", "attempt")[:limit])
        if not candidates:
            return []
        ScheduledJob.objects.filter(
            pk__in=[pk for pk, _ in candidates], status=JobStatus.PENDING
        ).update(
            status=JobStatus.QUEUED,
            attempt=F("attempt") + 1,
            claimed_at=now,
            # Time for the broker to deliver; the worker's own lease replaces it.
            lease_expires_at=now + timedelta(seconds=settings.JOB_QUEUE_TIMEOUT_SECONDS),
            retry_at=None,
            updated_at=now,
        )
        claimed = [(str(pk), attempt + 1) for pk, attempt in candidates]

        def enqueue():
            for job_id, attempt in claimed:
                run_campaign_job.apply_async(args=(job_id, attempt))
            jobs_claimed_total.inc(len(claimed))

        transaction.on_commit(enqueue)
    return claimed


def reclaim_expired_leases(*, now: datetime | None = None) -> int:
    """Jobs whose lease ran out (worker killed, task message lost) go back to pending. The
    next claim gives them a new attempt number, so the old attempt's writes are refused;
    the attempt bound is enforced when a worker starts the job."""
    now = now or timezone.now()
    returned = ScheduledJob.objects.filter(
        status__in=ACTIVE_JOB_STATUSES, lease_expires_at__lt=now
    ).update(status=JobStatus.PENDING, lease_expires_at=None, updated_at=now)
    if returned:
        jobs_reclaimed_total.inc(returned)
        logger.warning("leases_expired", returned_to_pending=returned)
    return returned


def seconds_until_next_due(*, now: datetime | None = None) -> float | None:
    now = now or timezone.now()
    pending = ScheduledJob.objects.filter(status=JobStatus.PENDING)
    earliest = pending.aggregate(run=Min("run_at"), retry=Min("retry_at"))
    candidates = [value for value in (earliest["run"], earliest["retry"]) if value is not None]
    if not candidates:
        return None
    return max(0.0, (min(candidates) - now).total_seconds())


def run_forever(*, interval: float | None = None, stop=lambda: False) -> None:
    """The dispatcher loop: claim what is due, reclaim abandoned leases now and then, and
    sleep until the next job is due (never longer than the interval, so new jobs are seen)."""
    interval = interval or settings.DISPATCH_INTERVAL_SECONDS
    next_reap = 0.0
    while not stop():
        claimed = claim_due_jobs()
        if time.monotonic() >= next_reap:
            reclaim_expired_leases()
            next_reap = time.monotonic() + max(interval, 5.0)
        if len(claimed) >= settings.DISPATCH_BATCH_SIZE:
            continue  # more are due right now
        wait = seconds_until_next_due()
        time.sleep(interval if wait is None else min(interval, max(wait, 0.005)))
