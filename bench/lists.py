"""Lists benchmark: the list and detail endpoints at size, each against GET /me in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushpilot_bench_lists \\
    REDIS_URL=redis://127.0.0.1:6379/13 \\
    .venv/bin/python bench/lists.py [--small] [--notifications 1000000] [--audit 10000000] \\
        [--events 10000000] [--devices 100000] [--seconds 10] \\
        [--workers 2] [--threads 4] [--clients 8]

It is a script, not a test. It DROPS and re-creates its database (the name must contain
"bench"), migrates it and fills one workspace server-side (INSERT ... SELECT generate_series):
300 campaigns of 2 contents, `--notifications` notifications (two per delivery, one delivery
per occurrence, as the engine writes them), `--audit` audit rows, `--events` raw analytics
events and `--devices` devices; plus a second workspace with a hundredth of each (so every
query has to scope). Each table is filled by cloning one template row made by the services
(every column copied, the varying ones overridden): no NOT NULL column is forgotten and
Django-side defaults are what the application itself wrote. Then ANALYZE.

The rows are spread over the table's default retention window (less two days: events and
notifications over 88 days, audit rows over 363), and on PostgreSQL the partitioned tables
get one partition per day (per week for the audit log) of that history, as a deployment that
old has after retention dropped what expired: every unbounded statement plans and opens
about 95 daily (or 53 weekly) partitions, not the one `before` partition of a fresh
migration.

It serves with gunicorn as shipped (config.wsgi, gunicorn.conf.py; the issue's measurement:
2 workers x 4 threads, 8 clients) with DEBUG off, and measures for `--seconds` each, with
`--clients` threads (one keep-alive httpx client each, the owner's JWT and X-Workspace-ID):
each endpoint between two runs of GET /me (the baseline: /me is measured first and after
every endpoint, and an endpoint's baseline is the mean of the two around it, so that the
machine's drift during the run moves both alike) -> req/s, p50/p95 and the ratio to /me.
Targets: ratio >= 0.5 and p95 <= 50 ms. Also shown, without a verdict: the gunicorn workers'
CPU per request ("cpu ms"), which other processes' load moves far less than req/s.

Paging works with page numbers and with cursors: the "next page" rows follow the `next` link
of the first page a few times and measure the page reached (page 4), whatever its form; the
deep-page rows add `page=` (ignored by a cursor-paginated list, which the table says).

Finally every endpoint runs once in-process (Django's test client, CaptureQueriesContext,
same database) with page_size 5 and 50: the query counts, which must not grow with the page.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    workers_cpu_seconds,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pushpilot_bench_lists"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
TARGET_RATIO = 0.5
TARGET_P95_MS = 50.0
CAMPAIGNS = 300
CHUNK = 1_000_000

BENCH_SETTINGS = """
from config.settings import *  # noqa: F403

REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"] = "1000000000/min"  # noqa: F405
"""


# --- data -------------------------------------------------------------------------------------
def make_fixtures():
    """Creates the owner; returns two workspaces and, in each, one template row per table
    (services only)."""
    from apps.accounts.models import User
    from apps.workspaces.services import create_workspace

    user = User.objects.create_user(email="bench@example.com", password=uuid.uuid4().hex)
    workspaces = [create_workspace(owner=user, name=name) for name in ("Bench", "Other")]
    templates = [make_templates(ws, user) for ws in workspaces]
    return workspaces, templates


def make_templates(workspace, user) -> dict:
    from apps.analytics.models import AnalyticsEvent
    from apps.campaigns.services import create_campaign
    from apps.common import audit
    from apps.devices.models import Device
    from apps.devices.services.registry import register_one
    from apps.notifications.models import Delivery, Notification, Occurrence

    campaign = create_campaign(
        workspace=workspace,
        actor=user,
        name="Campaign 0",
        topic="news",
        contents=[
            {"title": "Spring is here", "subtitle": "Everything 20% off"},
            {"title": "Last day", "subtitle": "The sale ends tonight"},
        ],
    )
    content = campaign.contents.order_by("position").first()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # a workspace sending now
    occurrence = Occurrence.objects.create(
        workspace=workspace, campaign=campaign, at=at, local=at.isoformat(), is_last=False
    )
    delivery = Delivery.objects.create(
        workspace=workspace, campaign=campaign, occurrence=occurrence, topic="news",
        run_at=at, due_at=at, status="completed", attempts=1, finished_at=at,
    )  # fmt: skip
    notifications = [
        Notification.objects.create(
            workspace=workspace,
            campaign=campaign,
            delivery=delivery,
            content=c,
            position=c.position,
            title=c.title,
            body=c.subtitle,
            status="sent",
            fcm_message_id=f"projects/bench/messages/{uuid.uuid4().hex}",
            sent_at=at,
        )
        for c in campaign.contents.order_by("position")
    ]
    entry = audit.record("campaign.updated", actor=user, workspace=workspace, target=campaign,
                         metadata={"fields": ["name"]})  # fmt: skip
    event = AnalyticsEvent.objects.create(
        workspace=workspace, event_id="template", type="opened", campaign_id=campaign.pk,
        content_id=content.pk, notification_id=notifications[0].pk, occurred_at=at,
        platform="android",
    )  # fmt: skip
    device = register_one(
        workspace_id=workspace.pk,
        payload={"token": f"template:APA91b{uuid.uuid4().hex * 4}", "platform": "android",
                 "time_zone": "Europe/Berlin", "language": "de-DE", "topics": ["news"]},
    )  # fmt: skip
    return {
        "campaign": campaign.pk, "occurrence": occurrence.pk, "delivery": delivery.pk,
        "notification": notifications[0].pk, "audit": entry.pk, "event": event.pk,
        "device": Device.objects.get(workspace=workspace, token_digest=device.digest).pk,
    }  # fmt: skip


def reuse_fixtures(database_url: str):
    """The two workspaces and their row counts, from a filled database."""
    from apps.workspaces.models import Workspace

    workspaces = [Workspace.objects.get(name=name) for name in ("Bench", "Other")]
    with psycopg.connect(database_url) as conn:
        counts = [count_rows(conn, ws.pk) for ws in workspaces]
    return workspaces, counts[0], counts[1]


def owner_token() -> str:
    """A fresh access JWT of the bench owner, for the requests that follow (a fill at the
    full sizes, or a long run, outlasts an access token's 15 minutes)."""
    from apps.accounts.models import User
    from apps.accounts.services import issue_tokens

    return issue_tokens(User.objects.get(email="bench@example.com"))["access"]


def busiest_campaign(database_url: str, workspace_id):
    """The workspace's campaign with the most deliveries (the template campaign has one)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT campaign_id FROM notifications_delivery WHERE workspace_id = %s "
            "GROUP BY campaign_id ORDER BY count(*) DESC, campaign_id LIMIT 1",
            [workspace_id],
        ).fetchone()[0]


def history_days() -> dict[str, int]:
    """table -> the days its rows are spread over: its default retention window less two."""
    from django.conf import settings

    return {
        "analytics_analyticsevent": settings.RETENTION_EVENTS_DAYS - 2,
        "notifications_notification": settings.RETENTION_NOTIFICATIONS_DAYS - 2,
        "common_auditlog": settings.RETENTION_AUDIT_DAYS - 2,
    }


def partition_history() -> None:
    """One partition per span of each table's history instead of the fresh migration's
    `before` partition (empty here: run before any row is written), made as maintenance
    makes them."""
    from django.db import connection

    from apps.common import partitions

    today = partitions.start_of_day(datetime.now(UTC))
    for table, days in history_days().items():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}_before")
        key, span = partitions.PARTITIONED[table][0], partitions.span_of(table)
        start = partitions.span_start(table, today - timedelta(days=days + 1))
        made = 0
        while start < partitions.span_start(table, today):
            partitions._create_partition(table, key, start, start + span, default=None)
            start += span
            made += 1
        log(f"    {table}: {made} partitions of history")


def step_ms(table: str, rows: int) -> float:
    """The gap between two cloned rows that spreads `rows` over the table's history."""
    return history_days()[table] * 86_400_000 / max(rows, 1)


def clone(conn, table: str, joins: str, where: str, overrides: dict[str, str], params) -> int:
    """INSERT INTO table SELECT <every column of the template row `t`, with `overrides`>."""
    columns = [
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            [table],
        )
    ]
    unknown = set(overrides) - set(columns)
    if unknown:
        raise SystemExit(f"{table} has no columns {sorted(unknown)}")
    names = ", ".join(f'"{c}"' for c in columns)
    exprs = ", ".join(overrides.get(c, f't."{c}"') for c in columns)
    sql = f"INSERT INTO {table} ({names}) SELECT {exprs} FROM {table} AS t {joins} WHERE {where}"
    started = time.perf_counter()
    added = conn.execute(sql, params).rowcount
    log(f"    {table}: +{added:,} rows in {time.perf_counter() - started:.0f} s")
    return added


def chunks(total: int):
    for first in range(1, total + 1, CHUNK):
        yield first, min(total, first + CHUNK - 1)


def fill(conn, workspace_id, template: dict, sizes: dict) -> dict:
    """Clone the templates up to `sizes` in one workspace; returns the rows per table."""
    p = {"ws": workspace_id, **template}
    fresh = {"id": "gen_random_uuid()"}
    log(f"  workspace {workspace_id}: {sizes}")
    clone(conn, "campaigns_campaign", "CROSS JOIN generate_series(1, %(n)s::bigint) AS g",
          "t.id = %(campaign)s",
          {**fresh, "name": "'Campaign ' || g", "status": "'completed'",
           "created_at": "t.created_at - g * interval '1 minute'",
           "updated_at": "t.updated_at - g * interval '1 minute'"},
          {**p, "n": sizes["campaigns"] - 1})  # fmt: skip
    conn.execute("UPDATE campaigns_campaign SET status = 'completed' WHERE id = %(campaign)s", p)
    clone(conn, "campaigns_campaigncontent",
          "JOIN campaigns_campaign AS c ON c.workspace_id = %(ws)s AND c.id <> %(campaign)s",
          "t.campaign_id = %(campaign)s", {**fresh, "campaign_id": "c.id"}, p)  # fmt: skip
    # One delivery per occurrence, two notifications (one per content) per delivery.
    occurrences = max(0, sizes["notifications"] // 2 - 1)
    for first, last in chunks(occurrences):
        clone(conn, "notifications_occurrence",
              "CROSS JOIN generate_series(%(first)s::bigint, %(last)s::bigint) AS g JOIN (SELECT id, "
              "row_number() OVER (ORDER BY id) - 1 AS rn FROM campaigns_campaign "
              "WHERE workspace_id = %(ws)s) AS c ON c.rn = g %% %(campaigns)s",
              "t.id = %(occurrence)s",
              {**fresh, "campaign_id": "c.id", "at": "t.at - g * %(step)s * interval '1 ms'",
               "created_at": "t.at - g * %(step)s * interval '1 ms'"},
              {**p, "first": first, "last": last, "campaigns": sizes["campaigns"],
               "step": step_ms("notifications_notification", occurrences)})  # fmt: skip
    clone(conn, "notifications_delivery",
          "JOIN notifications_occurrence AS o ON o.workspace_id = %(ws)s "
          "AND o.id <> %(occurrence)s",
          "t.id = %(delivery)s",
          {**fresh, "occurrence_id": "o.id", "campaign_id": "o.campaign_id", "run_at": "o.at",
           "due_at": "o.at", "created_at": "o.at", "updated_at": "o.at", "finished_at": "o.at"},
          p)  # fmt: skip
    clone(conn, "notifications_notification",
          "JOIN notifications_delivery AS d ON d.workspace_id = %(ws)s AND d.id <> %(delivery)s "
          "JOIN campaigns_campaigncontent AS cc ON cc.campaign_id = d.campaign_id",
          "t.id = %(notification)s",
          {**fresh, "delivery_id": "d.id", "campaign_id": "d.campaign_id", "content_id": "cc.id",
           "position": "cc.position", "title": "cc.title", "body": "cc.subtitle",
           "created_at": "d.run_at", "updated_at": "d.run_at", "sent_at": "d.run_at",
           "fcm_message_id": "'projects/bench/messages/' || md5(d.id::text || cc.id::text)"},
          p)  # fmt: skip
    actions = "(ARRAY['campaign.updated', 'campaign.scheduled', 'delivery.completed'])"
    for first, last in chunks(sizes["audit"] - 1):
        clone(conn, "common_auditlog", "CROSS JOIN generate_series(%(first)s::bigint, %(last)s::bigint) AS g",
              "t.id = %(audit)s",
              {**fresh, "action": f"{actions}[1 + g %% 3]", "target_id": "md5(g::text)",
               "created_at": "t.created_at - g * %(step)s * interval '1 ms'",
               "updated_at": "t.created_at - g * %(step)s * interval '1 ms'"},
              {**p, "first": first, "last": last,
               "step": step_ms("common_auditlog", sizes["audit"])})  # fmt: skip
    types = "(ARRAY['delivered', 'opened', 'clicked', 'dismissed'])"
    for first, last in chunks(sizes["events"] - 1):
        clone(conn, "analytics_analyticsevent",
              "CROSS JOIN generate_series(%(first)s::bigint, %(last)s::bigint) AS g", "t.id = %(event)s",
              {**fresh, "event_id": "'bench-' || g", "type": f"{types}[1 + g %% 4]",
               "occurred_at": "t.occurred_at - g * %(step)s * interval '1 ms'",
               "created_at": "t.created_at - g * %(step)s * interval '1 ms'",
               "updated_at": "t.created_at - g * %(step)s * interval '1 ms'"},
              {**p, "first": first, "last": last,
               "step": step_ms("analytics_analyticsevent", sizes["events"])})  # fmt: skip
    for first, last in chunks(sizes["devices"] - 1):
        clone(conn, "devices_device", "CROSS JOIN generate_series(%(first)s::bigint, %(last)s::bigint) AS g",
              "t.id = %(device)s",
              {**fresh, "token_digest": "md5('d' || g) || md5('e' || g)",
               "token_prefix": "left(md5('d' || g), 8)",
               "created_at": "t.created_at - g * interval '1 s'",
               "updated_at": "t.created_at - g * interval '1 s'"},
              {**p, "first": first, "last": last})  # fmt: skip
    return count_rows(conn, workspace_id)


def count_rows(conn, workspace_id) -> dict:
    counts = {}
    for table in ("campaigns_campaign", "campaigns_campaigncontent", "notifications_occurrence",
                  "notifications_delivery", "notifications_notification", "common_auditlog",
                  "analytics_analyticsevent", "devices_device"):  # fmt: skip
        counts[table] = conn.execute(
            f"SELECT count(*) FROM {table} WHERE workspace_id = %s", [workspace_id]
        ).fetchone()[0] if table != "campaigns_campaigncontent" else conn.execute(
            "SELECT count(*) FROM campaigns_campaigncontent cc JOIN campaigns_campaign c "
            "ON c.id = cc.campaign_id WHERE c.workspace_id = %s", [workspace_id]
        ).fetchone()[0]  # fmt: skip
    return counts


# --- measuring --------------------------------------------------------------------------------
def hammer(base_url: str, headers: dict, path: str, seconds: float, clients: int) -> dict:
    """`clients` threads GET `path` in a loop for `seconds`; every answer must be a 200."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[tuple[int, str]] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(mine: list[float]) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            http.get(path)  # connect and warm this worker's path
            start.wait()
            while time.perf_counter() < stop_at[0]:
                sent = time.perf_counter()
                response = http.get(path)
                mine.append(time.perf_counter() - sent)
                if response.status_code != 200:
                    failures.append((response.status_code, response.text[:300]))

    threads = [threading.Thread(target=client, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"GET {path}: {len(failures)} bad responses, {failures[:2]}")
    every = [x for mine in latencies for x in mine]
    return {
        "requests": len(every),
        "req_per_s": len(every) / elapsed,
        "p50_ms": percentile(every, 50) * 1000,
        "p95_ms": percentile(every, 95) * 1000,
    }


def with_params(path: str, **params) -> str:
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def follow_next(base_url: str, headers: dict, path: str, pages: int) -> tuple[str, str]:
    """The path of page `pages + 1` reached through `next` links, and the paging kind."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        body = http.get(path).raise_for_status().json()
        kind = "cursor" if "cursor=" in (body.get("next") or "") else "page"
        for _ in range(pages):
            if not body.get("next"):
                raise RuntimeError(f"{path}: fewer than {pages + 1} pages")
            parts = urlsplit(body["next"])
            path = urlunsplit(("", "", parts.path, parts.query, ""))
            body = http.get(path).raise_for_status().json()
    return path, kind


def endpoints(base_url: str, headers: dict, campaign_id) -> list[tuple[str, str]]:
    c = f"/api/v1/campaigns/{campaign_id}"
    rows = [
        ("campaigns 50", "/api/v1/campaigns?page_size=50"),
        ("campaign detail", c),
        ("campaigns 100", "/api/v1/campaigns?page_size=100"),
        ("campaigns 50 page 6", "/api/v1/campaigns?page_size=50&page=6"),
        ("notifications 50", "/api/v1/notifications?page_size=50"),
        ("notifications 50 page 50", "/api/v1/notifications?page_size=50&page=50"),
        ("campaign notifications 50", f"{c}/notifications?page_size=50"),
        ("campaign jobs 50", f"{c}/jobs?page_size=50"),
        ("audit-logs 50", "/api/v1/audit-logs?page_size=50"),
        ("audit-logs 50 page 50", "/api/v1/audit-logs?page_size=50&page=50"),
        ("devices 50", "/api/v1/audience/devices?page_size=50"),
        ("events 50", "/api/v1/analytics/events?page_size=50"),
        ("analytics overview", "/api/v1/analytics/overview"),
        ("campaign stats", f"{c}/stats"),
    ]
    for name, path in [("notifications 50", "/api/v1/notifications?page_size=50"),
                       ("audit-logs 50", "/api/v1/audit-logs?page_size=50"),
                       ("devices 50", "/api/v1/audience/devices?page_size=50"),
                       ("events 50", "/api/v1/analytics/events?page_size=50")]:  # fmt: skip
        reached, kind = follow_next(base_url, headers, path, 3)
        rows.append((f"{name} 4th page via next ({kind})", reached))
    return rows


def query_counts(access: str, workspace_id, rows: list[tuple[str, str]]) -> dict:
    """Queries per request, in-process against the same database: page_size 5 vs 50."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {access}", HTTP_X_WORKSPACE_ID=str(workspace_id),
                    HTTP_HOST="localhost")  # fmt: skip
    counts = {}
    for name, path in rows:
        sizes = [5, 50] if "page_size=50" in path else [None]
        found = []
        for size in sizes:
            url = with_params(path, page_size=size) if size else path
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code} {response.content[:300]}")
            found.append(len(captured.captured_queries))
        counts[name] = found
    return counts


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--small", action="store_true",
                        help="100,000 notifications, 1,000,000 audit rows and events, "
                             "10,000 devices, 3 s per endpoint")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10, help="per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database a previous run filled (same sizes) instead of "
                             "dropping and filling it again; only the measuring is repeated")  # fmt: skip
    args = parser.parse_args()
    if args.small:
        args.notifications, args.audit, args.events, args.devices = 100_000, 10**6, 10**6, 10**4
        args.seconds = 3

    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="pushpilot-bench-lists-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = django_env(database_url, "bench_lists_settings", BENCH_SETTINGS)
    log(f"database {urlsplit(database_url).path.lstrip('/')}, logs in {log_dir}")

    sizes = {"campaigns": CAMPAIGNS, "notifications": args.notifications, "audit": args.audit,
             "events": args.events, "devices": args.devices}  # fmt: skip
    other = {k: max(2, v // 100) for k, v in sizes.items()}
    if args.reuse:
        migrate(env)
        setup_django()
        logging.disable(logging.INFO)
        workspaces, rows, rows_other = reuse_fixtures(database_url)
        log("  reusing the filled database")
    else:
        recreate_database(database_url)
        migrate(env)
        setup_django()
        partition_history()
        # The fixtures' audit lines and the in-process requests' log lines are not the report.
        logging.disable(logging.INFO)
        workspaces, templates = make_fixtures()
        log("filling ...")
        started = time.perf_counter()
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = fill(conn, workspaces[0].pk, templates[0], sizes)
            rows_other = fill(conn, workspaces[1].pk, templates[1], other)
            log(f"  filled in {time.perf_counter() - started:.0f} s; VACUUM ANALYZE ...")
            conn.execute("VACUUM ANALYZE")
    log(f"  workspace: {rows}")
    log(f"  other workspace: {rows_other}")

    campaign_id = busiest_campaign(database_url, workspaces[0].pk)

    headers = {"Authorization": f"Bearer {owner_token()}", "X-Workspace-ID": str(workspaces[0].pk)}
    server = Gunicorn(log_dir, env, args.workers, args.threads)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.wait_ready()
        log(f"gunicorn: {args.workers} workers x {args.threads} threads; {args.clients} "
            f"clients, {args.seconds:g} s per endpoint")  # fmt: skip
        rows_to_measure = endpoints(server.base_url, headers, campaign_id)
        master = server.process.pid

        def measure(path: str) -> dict:
            # Extra information, no verdict: the workers' CPU per request barely moves with
            # other processes' load, unlike req/s on a shared machine.
            before = workers_cpu_seconds(master)
            result = hammer(server.base_url, headers, path, args.seconds, args.clients)
            spent = workers_cpu_seconds(master) - before
            result["server_cpu_ms"] = spent / result["requests"] * 1000
            return result

        # /me before and after every endpoint: each ratio is against the two /me runs around
        # it, so the machine's drift over the run (other processes, a noisy host) moves an
        # endpoint and its own baseline together.
        mes = [measure("/api/v1/me")]
        log(f"  /me: {mes[0]['req_per_s']:.0f} req/s")
        results = {}
        for name, path in rows_to_measure:
            results[name] = {"path": path, **measure(path)}
            mes.append(measure("/api/v1/me"))
            results[name]["me_req_per_s"] = (mes[-2]["req_per_s"] + mes[-1]["req_per_s"]) / 2
            log(f"  {name}: {results[name]['req_per_s']:.0f} req/s, "
                f"p95 {results[name]['p95_ms']:.1f} ms; /me after it {mes[-1]['req_per_s']:.0f}")  # fmt: skip
    finally:
        server.stop()

    counts = query_counts(owner_token(), workspaces[0].pk, rows_to_measure)
    print()
    me_rates = [m["req_per_s"] for m in mes]
    print(f"GET /api/v1/me, {len(mes)} runs around the endpoints: {min(me_rates):.0f}-"
          f"{max(me_rates):.0f} req/s, p50 {percentile([m['p50_ms'] for m in mes], 50):.1f} ms, "
          f"p95 {percentile([m['p95_ms'] for m in mes], 50):.1f} ms (medians); server CPU "
          f"{min(m['server_cpu_ms'] for m in mes):.2f}-{max(m['server_cpu_ms'] for m in mes):.2f} "
          "ms per request")  # fmt: skip
    header = (f"{'endpoint':<44} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'/me':>5} {'ratio':>6} "
              f"{'queries 5/50':>13} {'cpu ms':>7}  verdict")  # fmt: skip
    print(header)
    print("-" * len(header))
    verdicts = {}
    for name, r in results.items():
        r["ratio"] = r["req_per_s"] / r["me_req_per_s"]
        r["queries"] = counts[name]
        ok = r["ratio"] >= TARGET_RATIO and r["p95_ms"] <= TARGET_P95_MS
        verdicts[name] = ok
        misses = [m for m, bad in (("ratio", r["ratio"] < TARGET_RATIO),
                                   ("p95", r["p95_ms"] > TARGET_P95_MS)) if bad]  # fmt: skip
        print(f"{name:<44} {r['req_per_s']:>7.0f} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} "
              f"{r['me_req_per_s']:>5.0f} {r['ratio']:>6.2f} {'/'.join(map(str, counts[name])):>13} "
              f"{r['server_cpu_ms']:>7.2f}  "
              f"{'pass' if ok else 'MISS ' + ', '.join(misses)}")  # fmt: skip
    summary = {
        "sizes": {"workspace": rows, "other_workspace": rows_other},
        "server": {
            "workers": args.workers,
            "threads": args.threads,
            "clients": args.clients,
            "seconds": args.seconds,
        },
        "me": mes,
        "endpoints": results,
        "targets": {"ratio": TARGET_RATIO, "p95_ms": TARGET_P95_MS},
        "targets_met": verdicts,
    }
    (log_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log(f"summary in {log_dir / 'summary.json'}; load: {os.getloadavg()}")
    if not all(verdicts.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
