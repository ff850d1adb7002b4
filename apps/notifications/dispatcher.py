"""The scheduler loop (`manage.py dispatch`): claim due deliveries fairly, hand them to the
workers in batches, return abandoned ones, keep plans filled, and say it is alive.

A claim is one statement. On PostgreSQL it takes, for each workspace with due deliveries,
its earliest ones (an equal share of the claim) with `FOR UPDATE SKIP LOCKED`, so any number
of dispatchers split the work without waiting on each other, and one workspace's 10,000
deliveries due at 9:00 never queue ahead of another's single one. Each claimed delivery gets
the round's claim token, status queued and a queue lease; after commit, the round is
published as batches of DELIVERY_BATCH_SIZE, one broker message each, workspaces
interleaved. If the broker refuses, the unpublished deliveries go straight back to pending.
On SQLite (the embedded mode) a window function ranks the same way and the IMMEDIATE
transaction serialises claims.

Send-rate caps (send policies): a workspace with a cap is claimed for at most its room in
the rolling minute (apps.notifications.policies.RateRoom, one locked row per capped
workspace with deliveries due); the rest of its due deliveries stay pending, and its share
of the claim goes to the other workspaces, which keep flowing at full speed. Workspaces
without a cap cost nothing: the list of capped ones is read once a tick.

Backpressure: a dispatcher claims only while fewer than DISPATCH_MAX_QUEUED deliveries wait
for a worker, so the broker's queue stays short and a delivery that becomes due is claimed
(fairly) within a tick, instead of queueing behind a long backlog claimed earlier.

The loop survives what it depends on: any error in a round (a dropped database connection,
the broker down) is logged, counted, and retried with backoff; the process never exits for it.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import zip_longest

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Min
from django.utils import timezone

from apps.analytics import rollups
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaigns
from apps.common import bulk, idempotency
from apps.common.logging import get_logger
from apps.common.retry import backoff
from apps.common.tasks import apply_retention as retention_task
from apps.devices import services as devices
from apps.notifications import planning, policies
from apps.notifications.metrics import (
    dispatch_backlog,
    jobs_claimed_total,
    jobs_reclaimed_total,
    scheduler_errors_total,
)
from apps.notifications.models import (
    ACTIVE_STATUSES,
    FINAL_NOTIFICATION_STATUSES,
    Delivery,
    DeliveryStatus,
    DispatcherHeartbeat,
    Notification,
)
from apps.webhooks import services as webhooks

logger = get_logger("pushpilot.dispatcher")

HEARTBEAT_INTERVAL_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 10.0


class BrokerUnavailable(Exception):
    """Publishing a batch failed; its deliveries (and the round's later ones) were released."""


# --- claiming -----------------------------------------------------------------------------------
def claim_due(
    *, now: datetime | None = None, limit: int | None = None, counts: DueCounts | None = None
) -> list[tuple[str, list]]:
    """Claim up to `limit` deliveries due by `now` + DISPATCH_LOOKAHEAD and publish them
    after commit. Returns the batches as (claim token, delivery ids). `counts`: the
    caller's DueCounts, kept across claims (the dispatcher loop's)."""
    now = now or timezone.now()
    limit = limit or settings.DISPATCH_CLAIM_SIZE
    token = uuid.uuid4()
    lease = now + timedelta(seconds=settings.JOB_QUEUE_TIMEOUT_SECONDS)
    horizon = now + timedelta(seconds=settings.DISPATCH_LOOKAHEAD_SECONDS)
    with transaction.atomic():
        claimed = _claim(token, horizon, now, lease, limit, counts or DueCounts())
        if not claimed:
            return []
        batches = [(str(token), ids) for ids in _batches(claimed, settings.DELIVERY_BATCH_SIZE)]
        transaction.on_commit(lambda: _publish(token, batches))
    return batches


class DueCounts:
    """How many deliveries each workspace has due, as one dispatcher last counted them.

    Counting reads every due row; a dispatcher working through a burst of 100,000 claims
    500 at a time, so it recounts at most once a DISPATCH_TICK and, in between, subtracts
    what it claimed. A kept count is used only while it covers a whole claim (otherwise
    the claim counts afresh), so a workspace whose deliveries became due meanwhile waits at
    most a tick, behind no more than one claim."""

    def __init__(self) -> None:
        self.due: dict = {}
        self.counted_at = -math.inf
        self.caps: dict = {}
        self.caps_read_at = -math.inf

    def rate_caps(self) -> dict:
        """Workspace id (text) -> its send-rate cap per minute (send policies), read once a
        tick: a cap set or lifted takes effect within one."""
        if time.monotonic() - self.caps_read_at >= settings.DISPATCH_TICK_SECONDS:
            self.caps, self.caps_read_at = campaign_selectors.rate_caps(), time.monotonic()
        return self.caps

    def fresh(self) -> bool:
        return time.monotonic() - self.counted_at < settings.DISPATCH_TICK_SECONDS

    def count(self, table: str, due_by: datetime) -> dict:
        rows = bulk.execute(
            f"SELECT workspace_id::text, count(*) FROM {table} WHERE status = %s AND due_at <= %s "  # noqa: S608
            "GROUP BY workspace_id ORDER BY min(due_at) LIMIT %s",
            [DeliveryStatus.PENDING, due_by, settings.DISPATCH_CLAIM_SIZE],
        )
        self.due, self.counted_at = dict(rows), time.monotonic()
        return self.due

    def subtract(self, claimed: list[tuple]) -> None:
        taken = Counter(workspace for _, workspace in claimed)
        self.due = {w: n - taken[w] for w, n in self.due.items() if n > taken[w]}


def _claim(token, due_by: datetime, now: datetime, lease: datetime, limit: int, counts):
    """(delivery id, workspace id) of the deliveries due by `due_by` this statement claimed,
    as text (ids travel to the broker as text: no UUID objects on this hot path)."""
    table = connection.ops.quote_name(Delivery._meta.db_table)
    if connection.vendor == "postgresql":
        # A kept count is used while it still covers a full claim; a short one may miss a
        # workspace that became due since: count again.
        due = counts.due if counts.fresh() and sum(counts.due.values()) >= limit else None
        due = due or counts.count(table, due_by)
        # Send-rate caps: a capped workspace with deliveries due is claimed for at most its
        # room in the rolling minute; its share goes to the others (fair_shares). Without
        # caps among the due workspaces, nothing more happens here.
        caps = counts.rate_caps()
        room = policies.RateRoom({w: caps[w] for w in due if w in caps}, now)
        claimed = _claim_shares(table, token, due_by, now, lease, limit, room.limit(due))
        room.spend(claimed)
        counts.subtract(claimed)
        return claimed
    room = policies.RateRoom(counts.rate_caps(), now)
    # SQLite: a capped workspace's turns beyond its room are not claimed.
    capped = "".join(" WHEN %s THEN %s" for _ in room.room)
    cap_sql = f"turn <= CASE workspace_id{capped} ELSE turn END" if room.room else "1 = 1"
    cap_params = [p for w, n in room.room.items() for p in (uuid.UUID(w).hex, n)]
    prep = Delivery._meta.get_field("due_at").get_db_prep_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} SET status = %s, claim_token = %s, claimed_at = %s,
                       lease_expires_at = %s, updated_at = %s
                WHERE id IN (
                    SELECT id FROM (
                        SELECT id, due_at, workspace_id, row_number() OVER (
                            PARTITION BY workspace_id ORDER BY due_at) AS turn
                        FROM {table} WHERE status = %s AND due_at <= %s)
                    WHERE {cap_sql}
                    ORDER BY turn, due_at LIMIT %s)
                RETURNING id, workspace_id""",  # noqa: S608
            [DeliveryStatus.QUEUED, token.hex, prep(now, connection), prep(lease, connection),
             prep(now, connection), DeliveryStatus.PENDING, prep(due_by, connection),
             *cap_params, limit],
        )  # fmt: skip
        claimed = [(str(uuid.UUID(pk)), workspace) for pk, workspace in cursor.fetchall()]
    room.spend(claimed)
    return claimed


def _claim_shares(table, token, due_by, now, lease, limit, due: dict) -> list[tuple]:
    """(PostgreSQL) For each workspace with deliveries due, its fair share of its earliest."""
    if not due or limit <= 0:
        return []
    shares = fair_shares(due, limit)
    return bulk.execute(
        # = ANY(ARRAY(...)): the locked ids are collected first and updated through the
        # primary key (a join would make PostgreSQL hash the whole table).
        f"""UPDATE {table} SET status = %s, claim_token = %s, claimed_at = %s,
                   lease_expires_at = %s, updated_at = %s
            WHERE id = ANY(ARRAY(
                SELECT due.id FROM unnest(%s::uuid[], %s::int[]) AS w(workspace_id, share)
                CROSS JOIN LATERAL (
                    SELECT d.id FROM {table} d
                    WHERE d.workspace_id = w.workspace_id AND d.status = %s AND d.due_at <= %s
                    ORDER BY d.due_at LIMIT w.share
                    FOR UPDATE SKIP LOCKED) due))
            RETURNING id::text, workspace_id::text""",  # noqa: S608
        [DeliveryStatus.QUEUED, token, now, lease, now, list(shares), list(shares.values()),
         DeliveryStatus.PENDING, due_by],
    )  # fmt: skip


def fair_shares(due: dict, limit: int) -> dict:
    """How many of `limit` claims each workspace gets, given how many it has due: equal
    shares, and what a workspace cannot use goes to the others."""
    shares, remaining = {}, limit
    ordered = sorted(due.items(), key=lambda item: item[1])
    for index, (workspace, count) in enumerate(ordered):
        shares[workspace] = min(count, remaining // (len(ordered) - index))
        remaining -= shares[workspace]
    return {workspace: share for workspace, share in shares.items() if share > 0}


def _batches(claimed: list[tuple], size: int) -> list[list[str]]:
    """The claimed ids in batches, workspaces interleaved (the first batch carries every
    workspace's first delivery)."""
    by_workspace = defaultdict(list)
    for delivery_id, workspace_id in claimed:
        by_workspace[workspace_id].append(delivery_id)
    interleaved = [pk for turn in zip_longest(*by_workspace.values()) for pk in turn if pk]
    return [interleaved[i : i + size] for i in range(0, len(interleaved), size)]


def _publish(token: uuid.UUID, batches: list[tuple[str, list]]) -> None:
    from apps.notifications.tasks import send_deliveries

    published = 0
    try:
        with send_deliveries.app.producer_or_acquire() as producer:  # one for the round
            for _, ids in batches:
                # A short argsrepr: Celery would otherwise repr the whole id list for its logs.
                send_deliveries.apply_async(
                    args=(str(token), ids), producer=producer,
                    argsrepr=f"({str(token)!r}, <{len(ids)} deliveries>)",
                )  # fmt: skip
                published += 1
                jobs_claimed_total.inc(len(ids))
    except Exception as exc:  # any failure to publish: nothing may stay claimed for it
        unpublished = [pk for _, rest in batches[published:] for pk in rest]
        released = release(token, unpublished)
        raise BrokerUnavailable(
            f"publishing failed ({type(exc).__name__}); {released} deliveries released"
        ) from exc


def release(token: uuid.UUID, delivery_ids: list) -> int:
    """Deliveries claimed under `token` but never handed to a worker: back to pending."""
    return Delivery.objects.filter(
        pk__in=delivery_ids, claim_token=token, status=DeliveryStatus.QUEUED
    ).update(
        status=DeliveryStatus.PENDING,
        claim_token=None,
        lease_expires_at=None,
        updated_at=timezone.now(),
    )


def claim_limit() -> int:
    """How many deliveries the next claim may take: none while DISPATCH_MAX_QUEUED claimed
    ones wait for a worker (backpressure), at most DISPATCH_CLAIM_SIZE."""
    waiting = Delivery.objects.filter(status=DeliveryStatus.QUEUED).count()
    dispatch_backlog.set(waiting)
    return max(0, min(settings.DISPATCH_MAX_QUEUED - waiting, settings.DISPATCH_CLAIM_SIZE))


# --- recovering ---------------------------------------------------------------------------------
def reclaim_expired_leases(*, now: datetime | None = None) -> int:
    """Deliveries whose lease ran out (worker killed or stopped, message lost, no worker for
    a while) go back to pending, and their claim's ownership ends with it: a late write of
    the old claim matches nothing. Waiting cost no attempt; a worker's start did."""
    now = now or timezone.now()
    with transaction.atomic():
        expired = Delivery.objects.filter(status__in=ACTIVE_STATUSES, lease_expires_at__lt=now)
        if connection.features.has_select_for_update_skip_locked:
            expired = expired.select_for_update(skip_locked=True)
        ids = list(expired.values_list("pk", flat=True)[:1000])
        if not ids:
            return 0
        Delivery.objects.filter(pk__in=ids).update(
            status=DeliveryStatus.PENDING, claim_token=None, lease_expires_at=None, updated_at=now
        )
        Notification.objects.filter(delivery_id__in=ids).exclude(
            status__in=FINAL_NOTIFICATION_STATUSES
        ).update(claim_token=None, updated_at=now)
    jobs_reclaimed_total.inc(len(ids))
    logger.warning("leases_expired", returned_to_pending=len(ids))
    return len(ids)


def seconds_until_next_claim(*, now: datetime | None = None) -> float | None:
    """How long until the next pending delivery may be claimed (its due_at - lookahead)."""
    now = now or timezone.now()
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING)
    earliest = pending.aggregate(due=Min("due_at"))["due"]
    if earliest is None:
        return None
    return max(0.0, (earliest - now).total_seconds() - settings.DISPATCH_LOOKAHEAD_SECONDS)


def refill_plans(*, now: datetime | None = None) -> int:
    """Keep every active recurring campaign planned ahead; their next run times follow."""
    refilled = planning.refill(now=now)
    if refilled:
        with transaction.atomic():
            campaigns.settle(refilled, now=now or timezone.now())
    return len(refilled)


# --- the loop -----------------------------------------------------------------------------------
def beat(name: str, *, now: datetime | None = None) -> None:
    DispatcherHeartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": now or timezone.now()}
    )


def run_forever(*, stop=lambda: False, name: str | None = None) -> None:
    """Claim what is due (while the backlog has room), reap expired leases, refill plans and
    re-queue waiting device syncs and fold rollup shards now and then, beat, and sleep until the next delivery may be claimed (at most the
    interval). A failing round is retried with backoff: the loop outlives every failure."""
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    timers = {"reap": 0.0, "plan": 0.0, "devices": 0.0, "rollups": 0.0, "beat": 0.0}
    counts = DueCounts()
    failures = 0
    while not stop():
        try:
            pause = _round(timers, name, counts)
            failures = 0
        except Exception as exc:  # whatever it is: logged, counted, retried
            failures += 1
            pause = backoff(failures, base=0.25, cap=BACKOFF_MAX_SECONDS)
            scheduler_errors_total.labels(type(exc).__name__).inc()
            logger.warning("dispatch_round_failed", error=type(exc).__name__, detail=str(exc)[:300],
                           retry_in=pause)  # fmt: skip
            _reset_connection()
        if pause:
            time.sleep(pause)
    with contextlib.suppress(Exception):
        DispatcherHeartbeat.objects.filter(name=name).delete()


def _round(timers: dict[str, float], name: str, counts: DueCounts) -> float:
    """One round of the loop; returns how long to sleep before the next."""
    close_old_connections()  # a connection that failed its health check is replaced
    limit = claim_limit()
    claimed = sum(len(ids) for _, ids in claim_due(limit=limit, counts=counts)) if limit > 0 else 0
    _now_and_then(timers, name)
    if claimed:
        return 0.0  # claim again at once: more may be due
    tick = settings.DISPATCH_TICK_SECONDS
    if limit <= 0:
        return tick  # the workers are busy: wait for room
    wait = seconds_until_next_claim()
    return (
        settings.DISPATCH_INTERVAL_SECONDS
        if wait is None
        else min(settings.DISPATCH_INTERVAL_SECONDS, max(wait, tick))
    )


def _now_and_then(timers: dict[str, float], name: str) -> None:
    clock = time.monotonic()
    if clock >= timers["reap"]:
        reclaim_expired_leases()
        timers["reap"] = clock + settings.DISPATCH_REAP_INTERVAL_SECONDS
    if clock >= timers["plan"]:
        refill_plans()
        timers["plan"] = clock + settings.PLAN_INTERVAL_SECONDS
    if clock >= timers["rollups"]:
        rollups.compact()  # fold the shards of rollup buckets no longer written
        idempotency.sweep()  # one bounded batch of expired Idempotency-Key records
        timers["rollups"] = clock + settings.ROLLUP_COMPACT_INTERVAL_SECONDS
    if clock >= timers["devices"]:
        devices.requeue_waiting()  # device subscription syncs lost or deferred
        timers["devices"] = clock + settings.DEVICE_SYNC_SWEEP_SECONDS
    if clock >= timers.setdefault("webhooks", 0.0):  # webhook deliveries lost or due again
        webhooks.sweep()
        timers["webhooks"] = clock + settings.WEBHOOK_SWEEP_SECONDS
    if clock >= timers.setdefault("retention", 0.0):
        # A worker runs it (bounded, one at a time): the loop itself never waits on it.
        timers["retention"] = clock + settings.RETENTION_INTERVAL_SECONDS
        retention_task.delay()
    if clock >= timers["beat"]:
        beat(name)
        timers["beat"] = clock + HEARTBEAT_INTERVAL_SECONDS


def _reset_connection() -> None:
    with contextlib.suppress(Exception):  # closing a dead connection may itself fail
        connection.close()
