"""Ingest benchmark: POST /api/v1/events through gunicorn on PostgreSQL, against raw COPY;
campaign stats from rollups against a raw GROUP BY over the event table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushpilot_bench_ingest \\
    .venv/bin/python bench/ingest.py [--events 100000] [--stats-events 10000000] \\
        [--workers 2] [--threads 4] [--clients 8]

It is a script, not a test. It DROPS and re-creates its database (the name must contain
"bench"), migrates it, starts gunicorn (config.wsgi, gunicorn.conf.py) on a free port, and
measures, in one run:

1. baseline: psycopg `COPY analytics_analyticsevent (...) FROM STDIN` of N event rows (the
   same columns and value shapes the API stores), one connection, one transaction
   -> events/s;
2. the API: N events as batches of 100, then N more as batches of 1000, posted by
   `--clients` threads (httpx, keep-alive) with an ingest key -> events/s (first request
   sent to last response received), every batch checked (202, all accepted), and the ratio
   to (1). Targets: >= 0.25 at batches of 100 and >= 0.4 at batches of 1000, each checked
   on its own. Rollups are updated by these requests (COPY does not do that);
3. campaign stats at scale: the event table is filled to `--stats-events` rows server-side
   (INSERT ... SELECT generate_series, spread over 50 campaigns x 3 contents, 6 event types
   and 14 days) and the rollups are built from it, each bucket over all its shards, then
   compacted as the dispatcher's loop does (what ingestion would have produced; the
   test suite checks that equality). Then p50/p95 of
   - raw: `SELECT content_id, type, count(*) FROM analytics_analyticsevent
     WHERE workspace_id = ... AND campaign_id = ... GROUP BY content_id, type`,
   - ours: GET /api/v1/campaigns/{id}/stats through gunicorn, response cache off (every
     request computes from the rollups),
   each over every campaign. Targets: p95 <= 50 ms and <= 0.05 x the raw p95.

gunicorn runs with DEBUG off and a settings module generated in a temporary directory: config.settings
plus a throttle high enough not to throttle the benchmark itself, and the dashboard cache
off. Every process it starts is stopped on exit, Ctrl-C included. Logs: --log-dir (default
a temporary directory, printed).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from benchlib import (
    Gunicorn,
    django_env,
    log,
    migrate,
    percentile,
    recreate_database,
    setup_django,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pushpilot_bench_ingest"
TYPES = ["delivered", "opened", "clicked", "dismissed", "conversion:purchase", "conversion:signup"]
STATS_CAMPAIGNS = 50
STATS_CONTENTS = 3
STATS_DAYS = 14

# Ratio to COPY, per batch size (checked separately).
TARGET_INGEST_RATIO = {100: 0.25, 1000: 0.4}
TARGET_STATS_P95_MS = 50.0
TARGET_STATS_RATIO = 0.05

BENCH_SETTINGS = """
from config.settings import *  # noqa: F403

# The benchmark must measure ingestion, not its own throttle (the rates are read from the
# environment when config.settings is imported: set the rate itself).
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["ingest"] = "100000000/min"  # noqa: F405
# Every stats request computes from the rollups (no cached answers).
ANALYTICS_CACHE_SECONDS = 0
"""


# --- data -------------------------------------------------------------------------------------
def make_fixtures():
    """A workspace, its owner's JWT, an ingest key, and STATS_CAMPAIGNS campaigns of
    STATS_CONTENTS contents, each with one run's notifications."""
    from apps.accounts.models import User
    from apps.accounts.services import issue_tokens
    from apps.analytics.services import create_ingest_key
    from apps.campaigns.services import create_campaign
    from apps.notifications.models import Notification
    from apps.notifications.testing import make_delivery
    from apps.workspaces.services import create_workspace

    user = User.objects.create_user(email="bench@example.com", password=uuid.uuid4().hex)
    workspace = create_workspace(owner=user, name="Bench")
    key = create_ingest_key(workspace=workspace, actor=user, name="bench")
    campaigns, notifications = [], []
    for i in range(STATS_CAMPAIGNS):
        campaign = create_campaign(
            workspace=workspace, actor=user, name=f"Campaign {i}", topic="news",
            contents=[{"title": f"T{c}", "subtitle": "b"} for c in range(STATS_CONTENTS)],
        )  # fmt: skip
        delivery = make_delivery(campaign, datetime.now(UTC) - timedelta(days=1))
        for content in campaign.contents.order_by("position"):
            notifications.append(
                Notification.objects.create(
                    workspace=workspace, campaign=campaign, delivery=delivery, content=content,
                    position=content.position, title=content.title,
                )
            )  # fmt: skip
        campaigns.append(campaign)
    return workspace, issue_tokens(user)["access"], key.secret, campaigns, notifications


def make_events(prefix: str, n: int, notifications, now: datetime) -> list[dict]:
    rng = random.Random(prefix)
    events = []
    for i in range(n):
        notification = notifications[rng.randrange(len(notifications))]
        events.append(
            {
                "id": f"{prefix}-{i}",
                "type": TYPES[rng.randrange(len(TYPES))],
                "notification_id": str(notification.pk),
                # Apps report as they go (batches flushed every few seconds or minutes): the
                # last hour, across 9 notifications and 6 types, is ~300 distinct buckets.
                "occurred_at": (now - timedelta(seconds=rng.randrange(3600))).isoformat(),
                "platform": rng.choice(["ios", "android"]),
                "properties": {"app_version": "4.2.0"},
            }
        )
    return events


# --- 1. baseline: COPY ------------------------------------------------------------------------
COPY_COLUMNS = (
    "id", "created_at", "updated_at", "workspace_id", "event_id", "type", "notification_id",
    "campaign_id", "content_id", "occurred_at", "platform", "properties",
)  # fmt: skip


def copy_baseline(database_url: str, workspace_id, events: list[dict], notifications) -> dict:
    by_id = {str(n.pk): n for n in notifications}
    now = datetime.now(UTC)
    rows = []
    for e in events:  # prepared before the clock starts: the baseline is the database's work
        n = by_id[e["notification_id"]]
        rows.append(
            (uuid.uuid4(), now, now, workspace_id, e["id"], e["type"], n.pk, n.campaign_id,
             n.content_id, datetime.fromisoformat(e["occurred_at"]), e["platform"],
             json.dumps(e["properties"]))
        )  # fmt: skip
    with psycopg.connect(database_url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            sql = f"COPY analytics_analyticsevent ({', '.join(COPY_COLUMNS)}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
    return {"events": len(rows), "seconds": elapsed, "events_per_s": len(rows) / elapsed}


# --- 2. the API -------------------------------------------------------------------------------
def post_batches(base_url: str, secret: str, events: list[dict], size: int, clients: int) -> dict:
    bodies: queue.Queue = queue.Queue()
    for start in range(0, len(events), size):
        bodies.put(json.dumps({"events": events[start : start + size]}).encode())
    accepted, failures, latencies = [0], [], []
    lock = threading.Lock()
    headers = {"X-PushPilot-Key": secret, "Content-Type": "application/json"}

    def client() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            while True:
                try:
                    body = bodies.get_nowait()
                except queue.Empty:
                    return
                sent = time.perf_counter()
                response = http.post("/api/v1/events", content=body)
                took = time.perf_counter() - sent
                with lock:
                    latencies.append(took)
                    if response.status_code == 202 and not response.json()["rejected"]:
                        accepted[0] += response.json()["accepted"]
                    else:
                        failures.append((response.status_code, response.text[:300]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures or accepted[0] != len(events):
        raise RuntimeError(f"ingestion failed: {len(failures)} bad responses, e.g. {failures[:3]}")
    return {
        "batch": size,
        "events": len(events),
        "seconds": elapsed,
        "events_per_s": len(events) / elapsed,
        "request_p50_ms": percentile(latencies, 50) * 1000,
        "request_p95_ms": percentile(latencies, 95) * 1000,
    }


# --- 3. stats at scale ------------------------------------------------------------------------
def fill_events(database_url: str, workspace_id, campaigns, target_rows: int) -> dict:
    """Top the event table up to `target_rows` server-side, then build the rollups of the
    added rows exactly as incremental ingestion would have."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        existing = conn.execute("SELECT count(*) FROM analytics_analyticsevent").fetchone()[0]
        missing = max(0, target_rows - existing)
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(
            "CREATE TEMP TABLE bench_contents (idx int PRIMARY KEY, campaign_id uuid, "
            "content_id uuid)"
        )
        contents = [
            (campaign.pk, content.pk)
            for campaign in campaigns
            for content in campaign.contents.order_by("position")
        ]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_contents VALUES (%s, %s, %s)",
                [(i, c, k) for i, (c, k) in enumerate(contents)],
            )
        types = "ARRAY[" + ", ".join(f"'{t}'" for t in TYPES) + "]"
        started = time.perf_counter()
        chunk = 1_000_000
        for first in range(0, missing, chunk):
            last = min(missing, first + chunk) - 1
            conn.execute(
                f"""
                INSERT INTO analytics_analyticsevent ({", ".join(COPY_COLUMNS)})
                SELECT gen_random_uuid(), now(), now(), %(ws)s, 'bulk-' || g,
                       ({types})[1 + floor(random() * {len(TYPES)})::int], NULL,
                       c.campaign_id, c.content_id,
                       now() - random() * interval '{STATS_DAYS} days', 'ios', '{{}}'::jsonb
                FROM (SELECT g, floor(random() * %(n)s)::int AS idx
                      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g) AS s
                JOIN bench_contents c ON c.idx = s.idx
                """,
                {"ws": workspace_id, "first": first, "last": last, "n": len(contents)},
            )
            log(f"  events: {existing + last + 1:,} / {target_rows:,}")
        fill_seconds = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(
            """
            INSERT INTO analytics_eventrollup
                (id, created_at, updated_at, workspace_id, campaign_id, content_id, event_type,
                 bucket, shard, count)
            SELECT gen_random_uuid(), now(), now(), workspace_id, campaign_id, content_id, type,
                   date_trunc('hour', occurred_at), abs(hashtext(event_id)) % 8, count(*)
            FROM analytics_analyticsevent WHERE event_id LIKE 'bulk-%'
            GROUP BY workspace_id, campaign_id, content_id, type, date_trunc('hour', occurred_at),
                     abs(hashtext(event_id)) % 8
            ON CONFLICT (workspace_id, campaign_id, content_id, event_type, bucket, shard)
            DO UPDATE SET count = analytics_eventrollup.count + excluded.count
            """
        )
        rollup_seconds = time.perf_counter() - started
        # What the dispatcher's loop does every minute: shards of buckets no longer written
        # (older than ROLLUP_COMPACT_AFTER_SECONDS) are folded into one row each.
        from apps.analytics import rollups

        started = time.perf_counter()
        folded = rollups.compact()
        compact_seconds = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE analytics_analyticsevent")
        conn.execute("VACUUM ANALYZE analytics_eventrollup")
        total = conn.execute("SELECT count(*) FROM analytics_analyticsevent").fetchone()[0]
        rollup_rows = conn.execute("SELECT count(*) FROM analytics_eventrollup").fetchone()[0]
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('analytics_analyticsevent'))"
        ).fetchone()[0]
    return {
        "events": total,
        "rollup_rows": rollup_rows,
        "table_size": size,
        "fill_seconds": fill_seconds,
        "rollup_build_seconds": rollup_seconds,
        "shards_folded": folded,
        "compact_seconds": compact_seconds,
    }


def raw_group_by(database_url: str, workspace_id, campaigns, rounds: int) -> dict:
    timings = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(rounds):
            for campaign in campaigns:
                started = time.perf_counter()
                conn.execute(
                    "SELECT content_id, type, count(*) FROM analytics_analyticsevent "
                    "WHERE workspace_id = %s AND campaign_id = %s GROUP BY content_id, type",
                    (workspace_id, campaign.pk),
                ).fetchall()
                timings.append(time.perf_counter() - started)
    return _latencies(timings)


def api_stats(base_url: str, access: str, workspace_id, campaigns, rounds: int) -> dict:
    timings = []
    headers = {"Authorization": f"Bearer {access}", "X-Workspace-ID": str(workspace_id)}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        for campaign in campaigns[:10]:  # warm up (the answers are not cached: see settings)
            http.get(f"/api/v1/campaigns/{campaign.pk}/stats").raise_for_status()
        for _ in range(rounds):
            for campaign in campaigns:
                started = time.perf_counter()
                response = http.get(f"/api/v1/campaigns/{campaign.pk}/stats")
                timings.append(time.perf_counter() - started)
                response.raise_for_status()
    return _latencies(timings)


def _latencies(timings: list[float]) -> dict:
    return {
        "samples": len(timings),
        "p50_ms": percentile(timings, 50) * 1000,
        "p95_ms": percentile(timings, 95) * 1000,
    }


# --- main -------------------------------------------------------------------------------------
def _report(verdicts: dict[str, bool]) -> None:
    for name, met in verdicts.items():
        log(f"target {name}: {'MET' if met else 'MISS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="per batch size and for COPY")
    parser.add_argument("--stats-events", type=int, default=10_000_000, help="0: skip part 3")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--clients", type=int, default=8, help="client threads posting")
    parser.add_argument("--raw-rounds", type=int, default=1, help="passes over the campaigns")
    parser.add_argument("--api-rounds", type=int, default=4, help="passes over the campaigns")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="pushpilot-bench-ingest-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = django_env(database_url, "bench_ingest_settings", BENCH_SETTINGS)
    log(f"database {urlsplit(database_url).path.lstrip('/')}, logs in {log_dir}")

    recreate_database(database_url)
    migrate(env)
    setup_django()
    workspace, access, secret, campaigns, notifications = make_fixtures()
    now = datetime.now(UTC)

    server = Gunicorn(log_dir, env, args.workers, args.threads)
    interrupted = False

    def on_signal(signum, frame):
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.wait_ready()
        log(f"gunicorn: {args.workers} workers x {args.threads} threads; {args.clients} clients")

        # Warm up: every worker thread opens its database connection, imports, fills caches.
        warm = make_events("warm", 10 * args.workers * args.threads * 4, notifications, now)
        post_batches(server.base_url, secret, warm, 10, args.clients)

        n = args.events
        copy = copy_baseline(
            database_url, workspace.pk, make_events("copy", n, notifications, now), notifications
        )
        log(f"1. COPY baseline: {copy['events']:,} events in {copy['seconds']:.2f} s "
            f"= {copy['events_per_s']:,.0f} events/s")  # fmt: skip

        api = []
        for size in (100, 1000):
            events = make_events(f"api{size}", n, notifications, now)
            result = post_batches(server.base_url, secret, events, size, args.clients)
            result["ratio"] = result["events_per_s"] / copy["events_per_s"]
            result["target"] = TARGET_INGEST_RATIO[size]
            result["met"] = result["ratio"] >= result["target"]
            api.append(result)
            log(f"2. API, batches of {size}: {result['events']:,} events in "
                f"{result['seconds']:.2f} s = {result['events_per_s']:,.0f} events/s, "
                f"ratio to COPY {result['ratio']:.3f} (target >= {result['target']}: "
                f"{'MET' if result['met'] else 'MISS'}); "
                f"request p50 {result['request_p50_ms']:.1f} ms, "
                f"p95 {result['request_p95_ms']:.1f} ms")  # fmt: skip
        ingest_verdicts = {
            f"ingest ratio, batches of {r['batch']} (>= {r['target']})": r["met"] for r in api
        }

        if not args.stats_events:
            print(json.dumps({"copy": copy, "api": api, "targets_met": ingest_verdicts},
                             indent=2, default=str))  # fmt: skip
            _report(ingest_verdicts)
            if not all(ingest_verdicts.values()):
                sys.exit(1)
            return
        log(f"3. filling the event table to {args.stats_events:,} rows ...")
        filled = fill_events(database_url, workspace.pk, campaigns, args.stats_events)
        log(f"   {filled['events']:,} events ({filled['table_size']}), "
            f"{filled['rollup_rows']:,} rollup rows; fill {filled['fill_seconds']:.0f} s, "
            f"rollup build {filled['rollup_build_seconds']:.0f} s, {filled['shards_folded']:,} "
            f"shards folded in {filled['compact_seconds']:.0f} s")  # fmt: skip
        raw = raw_group_by(database_url, workspace.pk, campaigns, args.raw_rounds)
        ours = api_stats(server.base_url, access, workspace.pk, campaigns, args.api_rounds)
        ratio = ours["p95_ms"] / raw["p95_ms"]
        log(f"   raw GROUP BY: p50 {raw['p50_ms']:.1f} ms, p95 {raw['p95_ms']:.1f} ms "
            f"({raw['samples']} queries)")  # fmt: skip
        log(f"   GET /campaigns/{{id}}/stats (uncached): p50 {ours['p50_ms']:.1f} ms, "
            f"p95 {ours['p95_ms']:.1f} ms ({ours['samples']} requests); "
            f"ratio {ratio:.4f} (targets: p95 <= {TARGET_STATS_P95_MS:.0f} ms, "
            f"ratio <= {TARGET_STATS_RATIO})")  # fmt: skip

        verdicts = {
            **ingest_verdicts,
            f"stats p95 (<= {TARGET_STATS_P95_MS:.0f} ms)": ours["p95_ms"] <= TARGET_STATS_P95_MS,
            f"stats ratio (<= {TARGET_STATS_RATIO})": ratio <= TARGET_STATS_RATIO,
        }
        summary = {"copy": copy, "api": api, "stats_table": filled, "raw_group_by": raw,
                   "stats_api": ours, "stats_ratio": ratio, "targets_met": verdicts}  # fmt: skip
        print(json.dumps(summary, indent=2, default=str))
        _report(verdicts)
        if not all(verdicts.values()):
            sys.exit(1)
    finally:
        server.stop()
        if interrupted:
            log("interrupted")


if __name__ == "__main__":
    main()
