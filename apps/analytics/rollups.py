"""Hourly rollups, kept current in the transaction that records what they count.

Freshness: a rollup changes in the same transaction as the events or the notification
outcome it counts, so the stats are exact as soon as that transaction commits (dashboard
responses are then cached for ANALYTICS_CACHE_SECONDS).

Each call aggregates in Python first and writes ONE multi-row statement:

    INSERT INTO analytics_eventrollup (...) VALUES (...), (...)
    ON CONFLICT (workspace_id, campaign_id, content_id, event_type, bucket, shard)
    DO UPDATE SET count = analytics_eventrollup.count + excluded.count, ...

(PostgreSQL and SQLite >= 3.24 share this syntax), into one shard of each bucket (see
EventRollup). The rows are sorted by their key, so two transactions that touch the same
buckets' shard lock them in the same order and cannot deadlock.
"""

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.analytics.models import NIL_UUID, ROLLUP_SHARDS, EventRollup
from apps.common import bulk

OUTCOMES = ("sent", "failed")

# (workspace_id, campaign_id, content_id, event_type, bucket)
BucketKey = tuple[uuid.UUID, uuid.UUID, uuid.UUID, str, datetime]


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour that contains `moment` (an aware datetime)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bucket_key(
    workspace_id, campaign_id, content_id, event_type: str, moment: datetime
) -> BucketKey:
    return (
        _as_uuid(workspace_id),
        _as_uuid(campaign_id) if campaign_id else NIL_UUID,
        _as_uuid(content_id) if content_id else NIL_UUID,
        event_type,
        hour_of(moment),
    )


def increment(counts: Counter[BucketKey] | dict[BucketKey, int]) -> int:
    """Add `counts` to their buckets; returns how many distinct buckets were written.

    Call it inside the transaction that wrote what is being counted.
    """
    items = sorted((key, n) for key, n in counts.items() if n > 0)
    if not items:
        return 0
    now = timezone.now()
    shard = pick_shard()
    table = connection.ops.quote_name(EventRollup._meta.db_table)
    bulk.insert(
        EventRollup,
        ("id", "created_at", "updated_at", "workspace", "campaign_id", "content_id",
         "event_type", "bucket", "shard", "count"),
        [(uuid.uuid4(), now, now, *key, shard, n) for key, n in items],
        conflict=("workspace", "campaign_id", "content_id", "event_type", "bucket", "shard"),
        on_conflict=f'UPDATE SET "count" = {table}."count" + excluded."count", '
        '"updated_at" = excluded."updated_at"',
    )  # fmt: skip
    return len(items)


def pick_shard() -> int:
    """Which row of each bucket a write adds to (see EventRollup): one per transaction.
    SQLite writes one transaction at a time: nothing to spread there."""
    if connection.vendor != "postgresql":
        return 0
    return random.randrange(ROLLUP_SHARDS)  # noqa: S311 (spreading locks, not a secret)


# Moves the counts of shards 1.. of buckets older than the cut-off into shard 0, at most
# `limit` rows a call, in one statement (so no count is ever lost or counted twice).
_COMPACT_SQL = """
WITH picked AS (
    SELECT id FROM {table} WHERE shard > 0 AND bucket < %(before)s LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), moved AS (
    DELETE FROM {table} r USING picked WHERE r.id = picked.id
    RETURNING r.workspace_id, r.campaign_id, r.content_id, r.event_type, r.bucket, r.count
), folded AS (
    INSERT INTO {table} (id, created_at, updated_at, workspace_id, campaign_id, content_id,
                         event_type, bucket, shard, count)
    SELECT gen_random_uuid(), %(now)s, %(now)s, workspace_id, campaign_id, content_id,
           event_type, bucket, 0, sum(count)
    FROM moved
    GROUP BY workspace_id, campaign_id, content_id, event_type, bucket
    ORDER BY campaign_id, content_id, event_type COLLATE "C", bucket
    ON CONFLICT (workspace_id, campaign_id, content_id, event_type, bucket, shard)
    DO UPDATE SET count = {table}.count + excluded.count, updated_at = excluded.updated_at
)
SELECT count(*) FROM moved
"""


def compact(*, now: datetime | None = None, limit: int = 20_000) -> int:
    """Fold the shards of buckets that writes have left (older than
    ROLLUP_COMPACT_AFTER_SECONDS) back into one row each, so reads of history touch one row
    per bucket. PostgreSQL only (SQLite never shards). Returns how many rows were folded."""
    if connection.vendor != "postgresql":
        return 0
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.ROLLUP_COMPACT_AFTER_SECONDS)
    sql = _COMPACT_SQL.replace("{table}", EventRollup._meta.db_table)
    folded = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, {"before": before, "limit": limit, "now": now})
            (moved,) = cursor.fetchone()
        if not moved:
            return folded
        folded += moved


def record_notification_outcomes(outcomes, at: datetime) -> int:
    """Count notifications that became `sent` or `failed` at `at`: `outcomes` is an iterable
    of (workspace_id, campaign_id, content_id, status), one per notification.

    The sending engine calls this in the transaction that moves those notifications to their
    final status (that move is conditional, so it happens once per notification).
    """
    counts: Counter[BucketKey] = Counter()
    for workspace_id, campaign_id, content_id, status in outcomes:
        if status not in OUTCOMES:
            raise ValueError(f"status must be one of {OUTCOMES}, not {status!r}")
        counts[bucket_key(workspace_id, campaign_id, content_id, status, at)] += 1
    return increment(counts)


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
