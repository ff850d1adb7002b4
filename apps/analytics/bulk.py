"""The ingest hot path's one statement: events and their rollups (PostgreSQL)."""

from collections import Counter

import psycopg
from django.db import connection

# The event insert and its rollup increments in one round trip. The events' buckets are
# grouped in the database and upserted in key order (C collation: the same order for every
# concurrent batch, so two batches that share buckets queue instead of deadlocking). The
# final SELECT reports how many rows of each type were new; RETURNING lists only rows that
# were inserted, never the conflicting ones.
_INGEST_SQL = """
WITH new AS (
    INSERT INTO analytics_analyticsevent
        (id, created_at, updated_at, workspace_id, event_id, type, notification_id,
         campaign_id, content_id, occurred_at, platform, properties)
    SELECT gen_random_uuid(), %(now)s, %(now)s, %(workspace)s, e.event_id, e.type,
           e.notification_id, e.campaign_id, e.content_id, e.occurred_at, e.platform,
           e.properties::jsonb
    FROM unnest(%(event_ids)b::varchar[], %(types)b::varchar[], %(notification_ids)b::uuid[],
                %(campaign_ids)b::uuid[], %(content_ids)b::uuid[],
                %(occurred_at)b::timestamptz[], %(platforms)b::varchar[],
                %(properties)b::text[])
         AS e(event_id, type, notification_id, campaign_id, content_id, occurred_at, platform,
              properties)
    ON CONFLICT (workspace_id, event_id) DO NOTHING
    RETURNING type, campaign_id, content_id, occurred_at
), buckets AS (
    SELECT coalesce(campaign_id, %(nil)s) AS campaign_id,
           coalesce(content_id, %(nil)s) AS content_id,
           type AS event_type,
           date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
           count(*) AS n
    FROM new
    GROUP BY 1, 2, 3, 4
), counted AS (
    INSERT INTO analytics_eventrollup
        (id, created_at, updated_at, workspace_id, campaign_id, content_id, event_type, bucket,
         count)
    SELECT gen_random_uuid(), %(now)s, %(now)s, %(workspace)s, campaign_id, content_id,
           event_type, bucket, n
    FROM buckets
    ORDER BY campaign_id, content_id, event_type COLLATE "C", bucket
    ON CONFLICT (workspace_id, campaign_id, content_id, event_type, bucket)
    DO UPDATE SET count = analytics_eventrollup.count + excluded.count,
                  updated_at = excluded.updated_at
)
SELECT type, count(*) FROM new GROUP BY type
"""


def insert_events_and_count(workspace_id, events, now) -> Counter[str]:
    """(PostgreSQL) Store the new `events` (services.ingest._Event) and add them to their hourly
    rollups, in one statement; returns the number of new events of each type."""
    from apps.analytics.models import NIL_UUID

    # One order for every batch: two batches sharing event ids then take the unique-index
    # locks in the same order and wait for each other instead of deadlocking.
    events = sorted(events, key=lambda event: event.event_id)
    params = {
        "now": now,
        "workspace": workspace_id,
        "nil": NIL_UUID,
        "event_ids": [e.event_id for e in events],
        "types": [e.type for e in events],
        "notification_ids": [e.notification_id for e in events],
        "campaign_ids": [e.campaign_id for e in events],
        "content_ids": [e.content_id for e in events],
        "occurred_at": [e.occurred_at for e in events],
        "platforms": [e.platform for e in events],
        "properties": [e.properties_json for e in events],
    }
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_INGEST_SQL, params)
        return Counter(dict(cursor.fetchall()))
