"""The ingest hot path's one statement (PostgreSQL): resolve ids, dedupe, store, roll up."""

import functools
from collections import Counter
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote

from apps.common import bulk as common_bulk

# A whole batch in one statement, and so in one round trip and one transaction of its own
# (a single statement is atomic; no BEGIN/COMMIT round trips). The validated events travel
# as ONE json parameter (see _row; eight arrays of Python values cost psycopg more than the
# database takes to insert the rows) and are read back with json_to_recordset.
#
# 1. `checked`: every referenced id is resolved against the key's workspace (looked up by
#    primary key: one index probe per distinct id). `problem` says why an event cannot be
#    stored (the codes of services.ingest.ID_PROBLEMS); another
#    workspace's id is unknown, exactly like an id that does not exist. A notification fills
#    in its campaign and content.
# 2. `accepted`: the first valid event of each id in the batch (batch order).
# 3. `new`: inserted in (event id, occurred_at) order (C collation: the same order for every
#    concurrent batch, so two batches sharing events take the unique-index locks in the same
#    order and wait for each other instead of deadlocking); an event already stored is the
#    same id at the same occurred_at (the unique index holds the partition key, see
#    AnalyticsEvent); RETURNING lists only rows that were inserted, never the conflicting ones.
# 4. `counted`: the new rows' hourly buckets, grouped in the database and upserted in key
#    order into one shard of each (C collation again: two batches that share a shard of
#    their buckets queue instead of deadlocking; see EventRollup for the shards).
# The final SELECT reports the rejected events (index, problem) and how many rows of each
# type were new.
_INGEST_SQL = """
WITH input AS (
    SELECT * FROM json_to_recordset(%(events)s::json)
         AS e(i int, e text COLLATE "C", t text, n uuid, c uuid, o timestamptz, p text, q json)
), notification AS (
    SELECT id, campaign_id, content_id FROM {notification}
    WHERE id = ANY(ARRAY(SELECT DISTINCT n FROM input WHERE n IS NOT NULL))
      AND workspace_id = %(workspace)s
), campaign AS (
    SELECT id FROM {campaign}
    WHERE id = ANY(ARRAY(SELECT DISTINCT c FROM input WHERE n IS NULL AND c IS NOT NULL))
      AND workspace_id = %(workspace)s
), checked AS (
    SELECT e.i, e.e AS event_id, e.t AS type, e.n AS notification_id,
           CASE WHEN e.n IS NULL THEN e.c ELSE n.campaign_id END AS campaign_id,
           n.content_id, e.o AS occurred_at, e.p AS platform, e.q AS properties,
           CASE
               WHEN e.n IS NULL THEN
                   CASE WHEN e.c IS NOT NULL AND c.id IS NULL THEN 'unknown_campaign' END
               WHEN n.id IS NULL THEN 'unknown_notification'
               WHEN e.c IS NOT NULL AND e.c <> n.campaign_id THEN 'other_campaign'
           END AS problem
    FROM input e
    LEFT JOIN notification n ON n.id = e.n
    LEFT JOIN campaign c ON e.n IS NULL AND c.id = e.c
), accepted AS (
    SELECT DISTINCT ON (event_id) *
    FROM checked WHERE problem IS NULL
    ORDER BY event_id, i
), new AS (
    INSERT INTO analytics_analyticsevent
        (id, created_at, updated_at, workspace_id, event_id, type, notification_id,
         campaign_id, content_id, occurred_at, platform, properties)
    SELECT gen_random_uuid(), %(now)s, %(now)s, %(workspace)s, event_id, type,
           notification_id, campaign_id, content_id, occurred_at, platform, properties::jsonb
    FROM accepted
    ORDER BY event_id, occurred_at
    ON CONFLICT (workspace_id, occurred_at, event_id) DO NOTHING
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
         shard, count)
    SELECT gen_random_uuid(), %(now)s, %(now)s, %(workspace)s, campaign_id, content_id,
           event_type, bucket, %(shard)s, n
    FROM buckets
    ORDER BY campaign_id, content_id, event_type COLLATE "C", bucket
    ON CONFLICT (workspace_id, campaign_id, content_id, event_type, bucket, shard)
    DO UPDATE SET count = analytics_eventrollup.count + excluded.count,
                  updated_at = excluded.updated_at
)
SELECT i, problem, NULL, NULL FROM checked WHERE problem IS NOT NULL
UNION ALL
SELECT NULL, NULL, type, count(*) FROM new GROUP BY type
"""


@dataclass
class Stored:
    """What the statement did: new events per type, and the events it could not store
    (index in the batch -> problem code)."""

    types: Counter[str]
    problems: dict[int, str]


def _row(e) -> str:
    """One event as a JSON object for json_to_recordset, written directly: json.dumps of a
    dict per event costs twice as much. Every string is JSON-escaped except those that
    cannot need it: UUIDs (hex and hyphens, as validated), the ISO time of a datetime, a
    platform from Platform's values. `q` is the properties' JSON text (from json.dumps)."""
    n, c = e.notification_id, e.campaign_id
    return (
        f'{{"i":{e.index},"e":{_quote(e.event_id)},"t":{_quote(e.type)},'
        f'"n":{"null" if n is None else f"{_Q}{n}{_Q}"},'
        f'"c":{"null" if c is None else f"{_Q}{c}{_Q}"},'
        f'"o":"{e.occurred_at.isoformat()}","p":"{e.platform}","q":{e.properties_json}}}'
    )


_Q = '"'


@functools.cache  # the models' tables, once per process
def _statement() -> str:
    from apps.campaigns.models import Campaign
    from apps.notifications.models import Notification

    return _INGEST_SQL.replace("{notification}", Notification._meta.db_table).replace(
        "{campaign}", Campaign._meta.db_table
    )


def ingest(workspace_id, events, now) -> Stored:
    """(PostgreSQL) Resolve, dedupe, store and count the validated `events`
    (services.ingest._Event) in one statement; see _INGEST_SQL."""
    from django.db import connection

    from apps.analytics import rollups
    from apps.analytics.models import NIL_UUID

    document = "[" + ",".join([_row(e) for e in events]) + "]"
    params = {"events": document, "workspace": workspace_id, "now": now, "nil": NIL_UUID,
              "shard": rollups.pick_shard()}  # fmt: skip
    # As the ORM does before a connection's first query in a request (CONN_HEALTH_CHECKS):
    # a connection the server dropped meanwhile is replaced instead of failing this request.
    connection.close_if_health_check_failed()
    types: Counter[str] = Counter()
    problems: dict[int, str] = {}
    # Prepared (once per connection): parsing and planning this statement cost PostgreSQL
    # ~0.3 ms a call, ~10% of a batch of 100.
    rows = common_bulk.execute(_statement(), params, prepare=True)
    for index, problem, event_type, n in rows:
        if problem is None:
            types[event_type] = n
        else:
            problems[index] = problem
    return Stored(types, problems)
