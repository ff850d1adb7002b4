"""Running a batch of deliveries: the sending engine's business rules.

A dispatcher claims due deliveries under one claim token and hands a worker the batch in
one broker message (token, ids). `run_batch` then:

1. **starts** them, in one transaction: the campaigns' rows are locked in id order; each
   delivery still queued under this token becomes running with a lease and one more attempt
   (a duplicate or stale message starts nothing). Deliveries that must not go out finish
   at once: the campaign is no longer sendable (skipped), the run is later than its
   catch-up window (skipped, MISSED), workers died on it too often (failed, GAVE_UP), no
   Firebase project is connected (failed), a topic it sends to has reached the workspace's
   frequency cap (skipped, FREQUENCY_CAP; apps.notifications.policies). The others get
   their notification rows — one per content, created or taken over from an earlier
   attempt, marked `sending` — before anything goes out, so a crash mid-send leaves them
   recorded as possibly sent.
2. **sends** every message concurrently (firebase.client.send_many), each only while this
   worker still holds the lease; what an earlier attempt sent is never sent again, and a
   message resent after a crash carries the same collapse identity (the notification id).
3. **records** the outcomes in one transaction, retried if the database connection drops
   (every write is conditional on the claim token, so a retry or a superseded worker can
   only repeat what is still true): the notifications' outcomes and their hourly rollups,
   the deliveries' outcomes (completed, failed, or back to pending for a retry), their audit
   (one summary row per workspace: apps.common.audit.engine_batch), and the campaigns'
   statuses (apps.campaigns.services.settle) — a fixed number of statements per batch,
   whatever its size.

Retries: only FCM outcomes that can succeed later (UNAVAILABLE, INTERNAL, QUOTA_EXCEEDED,
timeouts, connection errors), after the delay FCM or the backoff asks for: the delivery goes
back to pending with `due_at` then, keeping its `run_at`. After JOB_MAX_ATTEMPTS worker
starts it fails with the reason, and so do its unsent notifications.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.analytics.rollups import record_notification_outcomes
from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign, CampaignContent
from apps.common import audit, bulk
from apps.common.logging import get_logger
from apps.integrations.firebase import client as fcm
from apps.integrations.firebase import services as firebase
from apps.integrations.firebase.selectors import service_accounts_for
from apps.integrations.firebase.validation import MessageInvalid
from apps.notifications import policies
from apps.notifications.metrics import (
    claim_to_send_seconds,
    delivery_batch_size,
    dispatch_lateness_seconds,
    notifications_failed_total,
    notifications_sent_total,
)
from apps.notifications.models import (
    FINAL_NOTIFICATION_STATUSES,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from apps.webhooks import services as webhooks

logger = get_logger("pushpilot.sending")

# Stop sending a little before the lease runs out (the reaper hands the delivery to another
# worker only after it has): this share of the lease, at most 2 s.
LEASE_MARGIN_SHARE, LEASE_MARGIN_MAX_SECONDS = 0.25, 2.0
# While a batch sends, what is settled is recorded this often: a worker killed mid-batch
# leaves only the messages then in flight to be sent again.
PROGRESS_SECONDS = 0.25
# Recording outcomes survives a dropped database connection: reconnect and try again.
RECORD_RETRY_DELAYS = (0.2, 0.5, 1, 2, 4, 8)


@dataclass(frozen=True)
class Outcome:
    """What became of one notification in this run."""

    status: str  # sent | failed | retry | not_sent
    name: str = ""  # FCM's message name, when sent
    code: str = ""
    message: str = ""
    retry_after: float = 0.0


NOT_SENT = Outcome("not_sent")


@dataclass
class Run:
    """One started delivery and the notifications this run owns."""

    delivery: Delivery
    notifications: list[Notification] = field(default_factory=list)


@dataclass
class Batch:
    token: uuid.UUID
    started_at: datetime
    runs: list[Run]
    accounts: dict  # workspace id -> service account
    before: dict  # delivery id -> {"sent": n, "failed": n} recorded by earlier attempts
    recorded: set = field(default_factory=set)  # notifications whose outcome is written

    @property
    def keys(self) -> tuple[datetime, datetime] | None:
        return _created_between([run.delivery for run in self.runs], self.started_at)


def _created_between(deliveries, now: datetime) -> tuple[datetime, datetime] | None:
    """Bounds of the created_at of these deliveries' notifications: from their earliest
    first start (rows made before that column existed follow it) to `now`. Every statement
    that finds notifications by id or delivery carries them: on PostgreSQL the table is
    partitioned by created_at, and constant bounds let it plan only the partitions they
    cover (one over ~100 daily partitions costs ~5 ms to plan, where the work is ~0.1 ms)."""
    starts = [d.first_started_at for d in deliveries if d.first_started_at is not None]
    return (min(starts), now) if starts else None


def _within(keys: tuple[datetime, datetime] | None) -> dict:
    return {"created_at__range": keys} if keys else {}


def run_batch(token: str, delivery_ids: list[str]) -> dict[str, int]:
    """Run one claimed batch; returns how many deliveries ended how (for logs and tests)."""
    batch = _start(uuid.UUID(str(token)), delivery_ids, timezone.now())
    if batch is None:
        logger.info("batch_ignored", deliveries=len(delivery_ids), detail="stale or duplicate")
        return {"ignored": len(delivery_ids)}
    outcomes = _send(batch) if batch.runs else {}
    summary = _record_with_retries(batch, outcomes)
    logger.info("batch_finished", deliveries=len(delivery_ids), **summary)
    return summary


# --- 1. start ---------------------------------------------------------------------------------
def _start(token: uuid.UUID, ids: list[str], now: datetime) -> Batch | None:
    queued = Delivery.objects.filter(pk__in=ids, claim_token=token, status=DeliveryStatus.QUEUED)
    # Audited as one row per workspace: campaigns started, deliveries finished unsent.
    with transaction.atomic(), audit.engine_batch("engine.batch_started", token=token):
        locked = campaigns.lock_for_sending(queued.values("campaign_id"))
        if not locked:
            return None
        queued.update(
            status=DeliveryStatus.RUNNING,
            started_at=now,
            first_started_at=Coalesce("first_started_at", Value(now)),
            lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        deliveries = list(
            Delivery.objects.filter(pk__in=ids, claim_token=token, status=DeliveryStatus.RUNNING)
        )
        accounts = service_accounts_for({d.workspace_id for d in deliveries})
        runs, finished = [], []
        for delivery in deliveries:
            delivery.campaign = locked[delivery.campaign_id]
            reason = _reason_not_to_send(delivery, now, accounts)
            if reason is None:
                runs.append(Run(delivery))
            else:
                finished.append((delivery, *reason))
        capped = policies.over_frequency_cap([run.delivery for run in runs])
        if capped:  # not sent: the workspace's frequency cap for one of its topics is reached
            finished += [(run.delivery, DeliveryStatus.SKIPPED, "FREQUENCY_CAP", capped[pk])
                         for run in runs if (pk := run.delivery.pk) in capped]  # fmt: skip
            runs = [run for run in runs if run.delivery.pk not in capped]
        delivery_batch_size.observe(len(deliveries))
        for run in runs:  # sending starts now, or at due_at for one claimed ahead
            sending = max(now, run.delivery.due_at)
            lateness = (sending - run.delivery.run_at).total_seconds()
            dispatch_lateness_seconds.observe(max(0.0, lateness))
        campaigns.mark_running(
            {run.delivery.campaign_id: run.delivery.campaign for run in runs}.values(), now=now
        )
        _take_notifications(token, runs, now)
        if finished:
            _finish_unsent(token, finished, now, _created_between(deliveries, now))
            campaigns.settle({delivery.campaign_id for delivery, *_ in finished}, now=now)
    return Batch(token, now, runs, accounts, before=_tallies(runs))


def _reason_not_to_send(delivery: Delivery, now: datetime, accounts) -> tuple | None:
    """(status, code, reason) for a delivery that must finish without sending, else None."""
    campaign: Campaign = delivery.campaign
    if not campaigns.is_sendable(campaign):
        return DeliveryStatus.SKIPPED, "SKIPPED", campaigns.reason_not_sendable(campaign)
    window = campaign.catch_up_window_seconds
    late = (now - delivery.run_at).total_seconds()
    if window is not None and late > window:
        return (
            DeliveryStatus.SKIPPED,
            "MISSED",
            f"MISSED: started {int(late)} s after its time, beyond the campaign's catch-up "
            f"window of {window} s.",
        )
    if delivery.attempts > settings.JOB_MAX_ATTEMPTS:  # its workers kept dying
        last = f"; last: {delivery.last_error}" if delivery.last_error else ""
        return (
            DeliveryStatus.FAILED,
            "GAVE_UP",
            f"GAVE_UP: {delivery.attempts - 1} attempts ended without an outcome{last}",
        )
    if delivery.workspace_id not in accounts:
        return (
            DeliveryStatus.FAILED,
            "FIREBASE_NOT_CONNECTED",
            "FIREBASE_NOT_CONNECTED: no Firebase project is connected.",
        )
    return None


def _take_notifications(token: uuid.UUID, runs: list[Run], now: datetime) -> None:
    """Each run's unsent notification rows, owned by this token: created for contents that
    have none yet, taken over where an earlier attempt left them unfinished."""
    if not runs:
        return
    by_campaign = defaultdict(list)
    for content in CampaignContent.objects.filter(
        campaign_id__in={run.delivery.campaign_id for run in runs}
    ).order_by("position"):
        by_campaign[content.campaign_id].append(content)

    def new_rows(skip=frozenset()):
        return [
            Notification(
                # Every attempt's rows get the same key: the (delivery, content, created_at)
                # uniqueness that a racing superseded worker meets, and one partition.
                created_at=run.delivery.first_started_at,
                workspace_id=run.delivery.workspace_id,
                campaign_id=run.delivery.campaign_id,
                delivery=run.delivery,
                content=content,
                position=content.position,
                title=title,
                body=body,
                status=NotificationStatus.SENDING,
                claim_token=token,
            )
            for run in runs
            for content in contents_of(run.delivery)
            if (run.delivery.pk, content.pk) not in skip
            for title, body in [campaigns.localized_text(content, run.delivery.language)]
        ]

    def contents_of(delivery: Delivery) -> list:
        """Every content, or an experiment's one: a variant's, or the chosen one."""
        contents = by_campaign[delivery.campaign_id]
        if not delivery.variant:
            return contents
        position = (
            campaigns.experiment_winner(delivery.campaign, now=now)
            if delivery.variant == "winner"
            else int(delivery.variant)
        )
        return [content for content in contents if content.position == position]

    if all(run.delivery.attempts == 1 for run in runs):
        # Every delivery's first start: no row can exist yet, each row made is this run's.
        rows = Notification.objects.bulk_create(new_rows())
    else:
        ids = [run.delivery.pk for run in runs]
        keys = _created_between([run.delivery for run in runs], now)
        existing = set(
            Notification.objects.filter(delivery_id__in=ids, **_within(keys)).values_list(
                "delivery_id", "content_id"
            )
        )
        # A superseded worker racing this one may make some rows too: taken over below.
        Notification.objects.bulk_create(new_rows(existing), ignore_conflicts=True)
        owned = {pk for pk, _ in _take_over_unsent(token, ids, now, keys)}
        rows = Notification.objects.filter(pk__in=owned, **_within(keys)).order_by("position")
    contents = {content.pk: content for group in by_campaign.values() for content in group}
    by_delivery = {run.delivery.pk: run for run in runs}
    for notification in rows:
        notification.content = contents.get(notification.content_id)
        by_delivery[notification.delivery_id].notifications.append(notification)


def _finish_unsent(token: uuid.UUID, finished: list[tuple], now: datetime, keys) -> None:
    """Deliveries that end without sending, as (delivery, status, code, reason): their unsent
    notifications (whichever attempt left them) fail with the same reason, and each delivery
    is audited."""
    why = {delivery.pk: (status, code, reason) for delivery, status, code, reason in finished}
    unsent = _take_over_unsent(token, list(why), now, keys)
    _write_outcomes(
        token,
        [(pk, Outcome("failed", code=why[d][1], message=why[d][2])) for pk, d in unsent],
        now,
        keys,
    )
    bulk.update_rows(
        Delivery,
        ("id", "status", "finished_at", "lease_expires_at", "last_error", "updated_at"),
        [(pk, status, now, None, reason[:2000], now) for pk, (status, _, reason) in why.items()],
        where={"claim_token": token, "status": DeliveryStatus.RUNNING},
    )
    audit.record_many(
        audit.Entry(
            f"delivery.{status}",
            workspace_id=delivery.workspace_id,
            target=delivery,
            metadata={"reason": reason, "attempts": delivery.attempts},
        )
        for delivery, status, _, reason in finished
    )
    webhooks.delivery_finished((d, status, None, reason) for d, status, _, reason in finished)
    for delivery, _, _, reason in finished:
        logger.info("delivery_not_sent", delivery_id=str(delivery.pk), reason=reason)


def _take_over_unsent(token: uuid.UUID, delivery_ids, now: datetime, keys) -> list[tuple]:
    """(notification id, delivery id) of the deliveries' unsent notifications, now owned by
    this token and marked sending (the caller owns the deliveries); `keys`: their
    created_at bounds (_created_between)."""
    Notification.objects.filter(delivery_id__in=delivery_ids, **_within(keys)).exclude(
        status__in=FINAL_NOTIFICATION_STATUSES
    ).update(status=NotificationStatus.SENDING, claim_token=token, updated_at=now)
    return list(
        Notification.objects.filter(
            delivery_id__in=delivery_ids,
            claim_token=token,
            status=NotificationStatus.SENDING,
            **_within(keys),
        ).values_list("pk", "delivery_id")
    )


# --- 2. send ----------------------------------------------------------------------------------
def _send(batch: Batch) -> dict[uuid.UUID, Outcome]:
    outcomes: dict[uuid.UUID, Outcome] = {}
    sends = []
    for run in batch.runs:
        delivery = run.delivery
        claim_to_send_seconds.observe(
            max(0.0, (batch.started_at - (delivery.claimed_at or batch.started_at)).total_seconds())
        )
        for notification in run.notifications:
            if notification.content is None:
                outcomes[notification.pk] = Outcome(
                    "failed", code="CONTENT_DELETED", message="The content was deleted."
                )
                continue
            try:
                message = campaigns.message_for(
                    delivery.campaign,
                    notification.content,
                    target=delivery.target,
                    notification_id=notification.pk,
                    language=delivery.language,
                )
            except MessageInvalid as exc:
                outcomes[notification.pk] = Outcome(
                    "failed", code="INVALID_ARGUMENT", message=exc.message
                )
                continue
            sends.append(
                fcm.Send(
                    notification.pk,
                    batch.accounts[delivery.workspace_id],
                    message,
                    attempt=delivery.attempts,
                    not_before=_not_before(delivery, batch.started_at),
                )
            )
    hold = _Hold(batch)
    results = fcm.send_many(
        sends, may_send=hold.held, while_waiting=hold.progress, wait_seconds=PROGRESS_SECONDS
    )
    for key, result in results.items():
        outcomes[key] = _outcome_of(result)
    return outcomes


def _not_before(delivery: Delivery, started_at: datetime) -> float:
    """When its send may go out: a delivery claimed ahead of its time is held until then —
    never longer than the lookahead, whatever the clocks of dispatcher and worker say."""
    hold_until = started_at + timedelta(seconds=settings.DISPATCH_LOOKAHEAD_SECONDS)
    return min(delivery.due_at, hold_until).timestamp()


def _outcome_of(result) -> Outcome:
    if result is fcm.NOT_SENT:
        return NOT_SENT
    if isinstance(result, fcm.FcmError):
        if result.retryable:
            return Outcome(
                "retry",
                code=result.error_code,
                message=str(result),
                retry_after=max(0.0, result.retry_after or 0.0),
            )
        return Outcome("failed", code=result.error_code, message=result.message)
    return Outcome("sent", name=result)


class _Hold:
    """This worker's hold on a batch while it sends. Sends stop once the lease may have run
    out (a stopped or slow worker must not send what another worker now owns); the lease is
    renewed every third of it; outcomes already settled are recorded as they come."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.ids = [run.delivery.pk for run in batch.runs]
        lease = settings.JOB_LEASE_SECONDS
        self.length = lease - min(LEASE_MARGIN_MAX_SECONDS, lease * LEASE_MARGIN_SHARE)
        self.deadline = time.monotonic() + self.length
        self.renew_at = time.monotonic() + lease / 3

    def held(self) -> bool:
        return time.monotonic() < self.deadline

    def progress(self, finished: dict) -> None:
        try:
            if time.monotonic() >= self.renew_at:
                self._renew()
            settled = [
                (pk, outcome)
                for pk, outcome in ((pk, _outcome_of(r)) for pk, r in finished.items())
                if outcome.status in FINAL_OUTCOMES and pk not in self.batch.recorded
            ]
            if settled:
                with transaction.atomic():
                    _write_outcomes(self.batch.token, settled, timezone.now(), self.batch.keys)
                self.batch.recorded.update(pk for pk, _ in settled)
        except (OperationalError, InterfaceError):
            close_old_connections()  # not now: the final record writes them

    def _renew(self) -> None:
        asked, now = time.monotonic(), timezone.now()
        renewed = Delivery.objects.filter(
            pk__in=self.ids, claim_token=self.batch.token, status=DeliveryStatus.RUNNING
        ).update(
            lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS), updated_at=now
        )
        self.renew_at = asked + settings.JOB_LEASE_SECONDS / 3
        if renewed == len(self.ids):
            self.deadline = asked + self.length
        else:
            self.deadline = 0.0  # another claim took some of them: stop sending
            logger.warning("lease_lost", token=str(self.batch.token))


# --- 3. record --------------------------------------------------------------------------------
def _record_with_retries(batch: Batch, outcomes: dict[uuid.UUID, Outcome]) -> dict[str, int]:
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return _record(batch, outcomes)
        except (OperationalError, InterfaceError) as exc:
            if delay is None:
                raise
            logger.warning("record_retry", error=type(exc).__name__, retry_in=delay)
            close_old_connections()
            time.sleep(delay)
    raise AssertionError("unreachable")


@transaction.atomic
def _record(batch: Batch, outcomes: dict[uuid.UUID, Outcome]) -> dict[str, int]:
    # Audited as one row per workspace: the deliveries' outcomes, the campaigns settled.
    with audit.engine_batch("engine.batch_settled", token=batch.token):
        return _record_outcomes(batch, outcomes)


def _record_outcomes(batch: Batch, outcomes: dict[uuid.UUID, Outcome]) -> dict[str, int]:
    now = timezone.now()
    settled = [_settle(run, outcomes, batch.before[run.delivery.pk], now) for run in batch.runs]
    _write_outcomes(
        batch.token,
        [
            (pk, o)
            for s in settled
            for pk, o in s.outcomes.items()
            if o.status in FINAL_OUTCOMES and pk not in batch.recorded
        ],
        now,
        batch.keys,
    )
    unsent = [pk for s in settled for pk, o in s.outcomes.items() if o.status not in FINAL_OUTCOMES]
    if unsent:  # a later attempt sends them
        Notification.objects.filter(
            pk__in=unsent,
            claim_token=batch.token,
            status=NotificationStatus.SENDING,
            **_within(batch.keys),
        ).update(status=NotificationStatus.PENDING, updated_at=now)
    changed = bulk.update_rows(
        Delivery,
        ("id", "status", "due_at", "finished_at", "lease_expires_at", "last_error", "updated_at"),
        [
            (s.delivery.pk, s.row_status, s.due_at, s.finished_at(now), None, s.error[:2000], now)
            for s in settled
        ],
        where={"claim_token": batch.token, "status": DeliveryStatus.RUNNING},
        returning=("id",),
    )
    ours = {pk for (pk,) in changed}  # a superseded worker changes nothing, audits nothing
    audit.record_many(
        s.audit_entry() for s in settled if s.status != LOST and s.delivery.pk in ours
    )
    webhooks.delivery_finished(
        (s.delivery, s.status, s.tally, s.error) for s in settled if s.delivery.pk in ours
    )
    if refused := {
        s.delivery.workspace_id: (o.code, o.message)
        for s in settled
        for o in s.outcomes.values()
        if o.code in firebase.CONNECTION_ERRORS
    }:
        firebase.sends_refused(refused)  # the connection is marked broken, once
    campaigns.settle({run.delivery.campaign_id for run in batch.runs}, now=now)
    summary: dict[str, int] = defaultdict(int)
    for s in settled:
        summary[s.status if s.delivery.pk in ours else "superseded"] += 1
    return dict(summary)


FINAL_OUTCOMES = ("sent", "failed")
LOST = "lost"  # this worker stopped before the end (its lease may be gone)


@dataclass
class Settled:
    """What a run comes to: the delivery's next status and each notification's outcome."""

    delivery: Delivery
    status: str  # a DeliveryStatus, or LOST
    due_at: datetime
    error: str
    outcomes: dict[uuid.UUID, Outcome]
    tally: dict[str, int]

    @property
    def row_status(self) -> str:
        # Lost: back to pending now; the next claim sends what this one did not.
        return DeliveryStatus.PENDING if self.status == LOST else self.status

    def finished_at(self, now: datetime) -> datetime | None:
        return None if self.row_status == DeliveryStatus.PENDING else now

    def audit_entry(self) -> audit.Entry:
        waiting = self.status == DeliveryStatus.PENDING
        return audit.Entry(
            "delivery.retry_scheduled" if waiting else f"delivery.{self.status}",
            workspace_id=self.delivery.workspace_id,
            target=self.delivery,
            metadata={
                "attempts": self.delivery.attempts,
                **self.tally,
                **({"error": self.error} if self.error else {}),
                **({"retry_at": self.due_at.isoformat()} if waiting else {}),
            },
        )


def _settle(run: Run, outcomes: dict, before: dict[str, int], now: datetime) -> Settled:
    delivery = run.delivery
    results = {n.pk: outcomes[n.pk] for n in run.notifications}
    settled = Settled(delivery, DeliveryStatus.COMPLETED, delivery.due_at, "", results, before)
    if any(o is NOT_SENT for o in results.values()):
        settled.status, settled.error = LOST, delivery.last_error
        return settled
    retries = [o for o in results.values() if o.status == "retry"]
    if retries:
        worst = max(retries, key=lambda o: o.retry_after)
        if delivery.attempts < settings.JOB_MAX_ATTEMPTS:
            settled.status = DeliveryStatus.PENDING
            settled.due_at = now + timedelta(seconds=worst.retry_after)
            settled.error = worst.message
            return settled
        # Given up: what was not sent fails with the reason.
        reason = f"gave up after {delivery.attempts} attempts: {worst.message}"
        given_up = Outcome("failed", code=worst.code, message=reason)
        settled.outcomes = {pk: given_up if o.status == "retry" else o for pk, o in results.items()}
    settled.tally = {
        status: before[status] + sum(o.status == status for o in settled.outcomes.values())
        for status in FINAL_OUTCOMES
    }
    settled.error = "; ".join(
        f"{o.code}: {o.message}" for o in settled.outcomes.values() if o.status == "failed"
    )
    if settled.tally["sent"] == 0 and settled.tally["failed"] > 0:
        settled.status = DeliveryStatus.FAILED
    return settled


def _tallies(runs: list[Run]) -> dict[uuid.UUID, dict[str, int]]:
    """Sent and failed notifications per delivery, recorded by earlier attempts."""
    tallies = {run.delivery.pk: {"sent": 0, "failed": 0} for run in runs}
    retried = [run.delivery for run in runs if run.delivery.attempts > 1]
    if not retried:
        return tallies
    for delivery_id, status in Notification.objects.filter(
        delivery_id__in=[delivery.pk for delivery in retried],
        status__in=FINAL_NOTIFICATION_STATUSES,
        **_within(_created_between(retried, timezone.now())),
    ).values_list("delivery_id", "status"):
        tallies[delivery_id][status] += 1
    return tallies


def _write_outcomes(token: uuid.UUID, outcomes: list[tuple[uuid.UUID, Outcome]], now, keys) -> None:
    """Sent and failed notifications, with their rollups and metrics, in one statement for
    the rows and one for the rollups. Only rows this token owns, still sending, change."""
    rows = [
        (pk, o.status, o.name, o.code[:64], o.message[:2000], now if o.status == "sent" else None,
         token, now)
        for pk, o in outcomes
        if o.status in FINAL_OUTCOMES
    ]  # fmt: skip
    if not rows:
        return
    changed = bulk.update_rows(
        Notification,
        ("id", "status", "fcm_message_id", "error_code", "error_message", "sent_at",
         "claim_token", "updated_at"),
        rows,
        where={"claim_token": token, "status": NotificationStatus.SENDING},
        between={"created_at": keys} if keys else None,
        returning=("workspace", "campaign", "content", "status", "error_code"),
    )  # fmt: skip
    record_notification_outcomes(((w, c, content, s) for w, c, content, s, _ in changed), now)
    sent = sum(1 for *_, status, _ in changed if status == NotificationStatus.SENT)
    failed_codes = [
        code or "UNKNOWN" for *_, status, code in changed if status == NotificationStatus.FAILED
    ]

    def count():
        if sent:
            notifications_sent_total.inc(sent)
        for code in failed_codes:
            notifications_failed_total.labels(code).inc()

    transaction.on_commit(count)
