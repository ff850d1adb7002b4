"""Delivering an endpoint's events: in order, one worker at a time, retried for about a day.

An endpoint's events form a line (created_at, ordinal). `deliver_endpoint` takes the
endpoint's lease — a conditional UPDATE that succeeds only when no live lease exists, the
endpoint is enabled and its head event is due — then sends the head event, records the
attempt, and goes on with the next while they succeed. The next event waits until the
previous one succeeded or was given up on. A failure schedules the head's next attempt
(WEBHOOK_RETRY_SCHEDULE with ±10 % jitter; a longer Retry-After is honoured up to the
longest step) in `retry_at` and lets go; when the last step fails too, the event is given up
(`failed`) and the endpoint is disabled (audited `webhook_endpoint.disabled`, the reason on
the endpoint) — every attempt of a whole schedule failed, about a day of failures.

Nothing is lost: the lease is renewed before each attempt and expires when its worker dies;
`sweep` (the dispatcher's housekeeping) re-queues every enabled endpoint with a pending
event whose lease is free and whose head is due — a lost task, a killed worker, a retry too
far ahead for a countdown. Two workers never deliver one endpoint concurrently: each write
of an outcome is conditional on holding the lease (a worker that lost it records its attempt
in the log but changes nothing else). A receiver may still see an event twice when a
worker dies after sending and before recording: `webhook-id` is the same, for deduplication.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from apps.common import audit
from apps.common.logging import get_logger
from apps.integrations.firebase import crypto
from apps.webhooks import signing, transport
from apps.webhooks.models import (
    AttemptOutcome,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)

logger = get_logger("pushpilot.webhooks")

# A task delivers at most this many events (or for this long) before handing the line to a
# fresh task: one busy endpoint does not hold a worker process forever.
MAX_MESSAGES_PER_TASK = 200
MAX_SECONDS_PER_TASK = 60.0
# Retries this close are scheduled as a task countdown; later ones wait for the sweep (a
# countdown longer than the broker's visibility timeout would be redelivered early).
COUNTDOWN_MAX_SECONDS = 600.0
RETENTION_BATCH = 1000
RETENTION_BATCHES_PER_SWEEP = 10
RETENTION_INTERVAL_SECONDS = 3600.0


def enqueue(endpoint_id: str, countdown: float | None = None) -> None:
    from apps.webhooks.tasks import deliver_endpoint as task

    try:
        task.apply_async(args=(str(endpoint_id),), countdown=countdown)
    except (BrokerError, OSError) as exc:  # the broker is down: the sweep re-queues it
        logger.warning("webhook_enqueue_failed", endpoint_id=str(endpoint_id),
                       error=type(exc).__name__, detail=str(exc)[:300])  # fmt: skip


def secrets_in_use(endpoint: WebhookEndpoint, now) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    current = [crypto.decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        current.append(crypto.decrypt(endpoint.previous_secret_encrypted))
    return current


def _lease_seconds() -> float:
    return max(settings.WEBHOOK_LEASE_SECONDS, settings.WEBHOOK_TIMEOUT_SECONDS + 1.0)


def _claim(endpoint_id, token: uuid.UUID) -> bool:
    now = timezone.now()
    return bool(
        # No join in this filter: Django would make it `id IN (subquery)`, which PostgreSQL
        # does not re-check against a row another claim just updated (both would win).
        WebhookEndpoint.objects.filter(pk=endpoint_id, is_enabled=True)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .update(
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=_lease_seconds()),
            updated_at=now,
        )
    )


def _renew(endpoint_id, token: uuid.UUID) -> WebhookEndpoint | None:
    """Extend the lease for one more attempt; the endpoint as it is now, or None if the
    lease is gone (expired and taken, or the endpoint disabled or deleted)."""
    now = timezone.now()
    renewed = WebhookEndpoint.objects.filter(
        pk=endpoint_id, lease_token=token, is_enabled=True
    ).update(lease_expires_at=now + timedelta(seconds=_lease_seconds()))
    if not renewed:
        return None
    return WebhookEndpoint.objects.filter(pk=endpoint_id).first()


def _release(endpoint_id, token: uuid.UUID) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, lease_token=token).update(
        lease_token=None, lease_expires_at=None
    )


def _head(endpoint_id) -> WebhookMessage | None:
    return (
        WebhookMessage.objects.filter(endpoint_id=endpoint_id, status=MessageStatus.PENDING)
        .order_by("created_at", "ordinal")
        .first()
    )


def deliver_endpoint(endpoint_id: str) -> dict[str, int]:
    """Deliver the endpoint's due events in order while they succeed (see the module)."""
    summary = {"delivered": 0, "failed": 0}
    started = time.monotonic()
    while True:
        token = uuid.uuid4()
        if not _claim(endpoint_id, token):
            return summary  # another worker holds it, it is disabled, or its head is not due
        try:
            more = _deliver_line(endpoint_id, token, summary, started)
        finally:
            _release(endpoint_id, token)
        if more == "budget":
            enqueue(endpoint_id)  # a fresh task goes on with the line
            return summary
        # An event committed while this worker was finishing found the lease taken and its
        # task gave up: look once more after letting go.
        if more == "done" and _head(endpoint_id) is not None:
            continue
        return summary


def _deliver_line(endpoint_id, token, summary, started) -> str:
    """'done' (nothing pending), 'stopped' (a failure, or the lease lost), 'budget'."""
    for _ in range(MAX_MESSAGES_PER_TASK):
        if time.monotonic() - started > MAX_SECONDS_PER_TASK:
            return "budget"
        endpoint = _renew(endpoint_id, token)
        if endpoint is None:
            return "stopped"
        message = _head(endpoint_id)
        if message is None:
            return "done"
        now = timezone.now()
        headers = signing.headers(
            secrets_in_use(endpoint, now), message.event_id, int(now.timestamp()), message.body
        )
        result = transport.post(endpoint.url, message.body, headers)
        succeeded = _record(endpoint, message, token, result, started_at=now)
        summary["delivered" if succeeded else "failed"] += 1
        if not succeeded:
            return "stopped"
    return "budget"


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before the attempt after failed attempt number `attempt` (1-based)."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    delay = schedule[attempt - 1] * random.uniform(0.9, 1.1)  # noqa: S311 (jitter)
    if retry_after:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def _record(endpoint: WebhookEndpoint, message: WebhookMessage, token, result, *, started_at):
    """Log the attempt; move the message and the endpoint on, if this worker still holds the
    lease. Returns whether the attempt succeeded."""
    now = timezone.now()
    attempt = message.attempts + 1
    with transaction.atomic():
        WebhookAttempt.objects.create(
            workspace_id=endpoint.workspace_id, endpoint=endpoint, message=message,
            event_id=message.event_id, event_type=message.event_type, attempt=attempt,
            outcome=AttemptOutcome.SUCCEEDED if result.ok else AttemptOutcome.FAILED,
            status_code=result.status_code, latency_ms=result.latency_ms,
            response_headers=result.headers, response_body=result.body_head,
            error=result.error[:2000], started_at=started_at,
        )  # fmt: skip
        held = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk, lease_token=token)
        if not held.exists():
            logger.warning("webhook_lease_lost", endpoint_id=str(endpoint.pk))
            return result.ok
        pending = WebhookMessage.objects.filter(pk=message.pk, status=MessageStatus.PENDING)
        if result.ok:
            pending.update(status=MessageStatus.DELIVERED, attempts=attempt, delivered_at=now,
                           last_error="", updated_at=now)  # fmt: skip
            held.update(last_success_at=now, retry_at=None, updated_at=now)
            return True
        if attempt <= len(settings.WEBHOOK_RETRY_SCHEDULE):
            delay = retry_delay(attempt, result.retry_after)
            pending.update(attempts=attempt, last_error=result.error[:2000], updated_at=now)
            held.update(
                last_failure_at=now, retry_at=now + timedelta(seconds=delay), updated_at=now
            )
            if delay <= COUNTDOWN_MAX_SECONDS:
                transaction.on_commit(lambda: enqueue(endpoint.pk, countdown=delay))
            return False
        # The whole schedule failed: give the event up and disable the endpoint.
        pending.update(status=MessageStatus.FAILED, attempts=attempt, failed_at=now,
                       last_error=result.error[:2000], updated_at=now)  # fmt: skip
        reason = (
            f"Disabled automatically: all {attempt} attempts of event {message.event_id} "
            f"({message.event_type}) failed since {message.created_at.isoformat()}; last error: "
            f"{result.error}"
        )[:2000]
        held.update(is_enabled=False, disabled_reason=reason, disabled_at=now, retry_at=None,
                    last_failure_at=now, updated_at=now)  # fmt: skip
        endpoint.refresh_from_db()
        audit.record(
            "webhook_endpoint.disabled",
            actor=None,
            workspace=endpoint.workspace,
            target=endpoint,
            metadata={"reason": reason, "event_id": message.event_id, "attempts": attempt},
        )
    logger.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint.pk))
    return False


# --- the sweep ----------------------------------------------------------------------------------
_last_retention = {"at": -float("inf")}


def sweep(*, now=None) -> int:
    """Re-queue every enabled endpoint with a pending event, a free lease and a due head;
    now and then delete old finished events and attempts. Returns the endpoints re-queued."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.WEBHOOK_SWEEP_SECONDS)
    waiting = WebhookMessage.objects.filter(
        endpoint_id=OuterRef("pk"), status=MessageStatus.PENDING, created_at__lte=grace
    )
    due = (
        WebhookEndpoint.objects.filter(is_enabled=True)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .filter(Exists(waiting))
    )
    ids = list(due.values_list("pk", flat=True)[:1000])
    for endpoint_id in ids:
        enqueue(endpoint_id)
    if time.monotonic() - _last_retention["at"] >= RETENTION_INTERVAL_SECONDS:
        _last_retention["at"] = time.monotonic()
        purge_old(now=now)
    return len(ids)


def purge_old(*, now=None) -> int:
    """Delete attempts, and delivered or given-up events, older than WEBHOOK_RETENTION_DAYS,
    in bounded batches (the rest at the next sweep). Returns the rows deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    deleted = 0
    for queryset in (
        WebhookAttempt.objects.filter(created_at__lt=cutoff),
        WebhookMessage.objects.filter(
            status__in=(MessageStatus.DELIVERED, MessageStatus.FAILED), updated_at__lt=cutoff
        ),
    ):
        for _ in range(RETENTION_BATCHES_PER_SWEEP):
            ids = list(queryset.values_list("pk", flat=True)[:RETENTION_BATCH])
            if not ids:
                break
            deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted
