"""Devices benchmark: registration through the API against raw COPY, and audience estimates
at 1,000,000 devices against a direct count over the registry.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushpilot_bench_devices \\
    .venv/bin/python bench/devices.py [--devices 20000] [--registry 1000000] \\
        [--workers 2] [--threads 4] [--clients 8]

It is a script, not a test. It DROPS and re-creates its database (the name must contain
"bench"), migrates it, starts gunicorn (config.wsgi, gunicorn.conf.py: what `make run` and
compose serve) on a free port, and measures in one run:

1. baseline: psycopg `COPY devices_device (...) FROM STDIN` of N device rows (the columns
   the API stores, prepared before the clock starts) -> devices/s;
2. the API: N devices as `POST /devices/batch` of 1000, posted by `--clients` threads with
   an ingest key -> devices/s (target >= 2,000/s), every batch checked (202, all accepted)
   and the ratio to (1); then N/10 single `POST /devices` (an app's own registration at
   start) -> devices/s, reported (no target: one request per device). The requests also
   keep the audience counts and queue the subscription sync (no worker runs: the sync's
   FCM calls are not what is measured);
3. estimates at scale: the registry is filled to `--registry` devices server-side (30 zones,
   4 languages, 3 platforms, 10 buckets, any of 5 app topics) and the counts are rebuilt
   from it (`apps.devices.audience.rebuild`, what registration keeps incrementally; the test
   suite checks that equality). Then, for 300 random topics and conditions (up to 5 topics,
   with && || ! and parentheses), p50/p95 of
   - raw: the same condition as SQL over the devices' jsonb topics (`topics ? 'a'`), a
     direct count;
   - ours: GET /api/v1/audience/estimate through gunicorn;
   every answer checked equal to the direct count. Target: p95 <= 50 ms. Also GET
   /api/v1/audience/topics p95.

gunicorn runs with DEBUG off and a settings module generated in a temporary directory:
config.settings plus a throttle high enough not to throttle the benchmark itself.
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
from datetime import UTC, datetime
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

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pushpilot_bench_devices"
TARGET_DEVICES_PER_S = 2000
TARGET_ESTIMATE_P95_MS = 50.0
LANGUAGES = ["en", "pt-BR", "de", "ja"]
APP_TOPICS = ["news", "sports", "deals", "weather", "beta"]
PLATFORMS = ["android", "ios", "web"]

BENCH_SETTINGS = """
from config.settings import *  # noqa: F403

REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["devices"] = "100000000/min"  # noqa: F405
"""


# --- data -------------------------------------------------------------------------------------
def make_fixtures():
    from apps.accounts.models import User
    from apps.accounts.services import issue_tokens
    from apps.analytics.services import create_ingest_key
    from apps.workspaces.services import create_workspace, update_workspace

    user = User.objects.create_user(email="bench@example.com", password=uuid.uuid4().hex)
    workspace = create_workspace(owner=user, name="Bench")
    update_workspace(workspace=workspace, actor=user, languages=LANGUAGES)
    key = create_ingest_key(workspace=workspace, actor=user, name="bench")
    return workspace, issue_tokens(user)["access"], key.secret


def make_devices(prefix: str, n: int) -> list[dict]:
    from apps.devices.testing import SAMPLE_ZONES as ZONES

    rng = random.Random(prefix)
    return [
        {
            "token": f"{prefix}{i:09d}:APA91b{uuid.UUID(int=rng.getrandbits(128)).hex * 4}",
            "time_zone": rng.choice(ZONES),
            "language": rng.choice(["en-US", "pt-BR", "de-AT", "ja-JP", "fr-FR"]),
            "platform": rng.choice(PLATFORMS),
            "app_version": "4.2.0",
            "topics": rng.sample(APP_TOPICS, rng.randrange(3)),
        }
        for i in range(n)
    ]


# --- 1. baseline: COPY ------------------------------------------------------------------------
COPY_COLUMNS = (
    "id", "created_at", "updated_at", "workspace_id", "token_digest", "encrypted_token",
    "token_prefix", "platform", "time_zone", "language", "app_version", "app_topics", "bucket",
    "topics", "subscribed", "status", "retired_reason", "needs_sync", "sync_error",
    "last_seen_at",
)  # fmt: skip


def copy_baseline(database_url: str, workspace_id, devices: list[dict]) -> dict:
    now = datetime.now(UTC)
    rows = [
        (uuid.uuid4(), now, now, workspace_id, uuid.uuid4().hex * 2, "x" * 300, d["token"][:8],
         d["platform"], d["time_zone"], d["language"], d["app_version"], json.dumps(d["topics"]),
         i % 10, json.dumps(d["topics"]), "[]", "active", "", True, "", now)
        for i, d in enumerate(devices)
    ]  # fmt: skip
    with psycopg.connect(database_url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            sql = f"COPY devices_device ({', '.join(COPY_COLUMNS)}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        conn.rollback()  # the rows were only the baseline's: the API registers its own
        elapsed = time.perf_counter() - started
    return {"devices": len(rows), "seconds": elapsed, "devices_per_s": len(rows) / elapsed}


# --- 2. the API -------------------------------------------------------------------------------
def post_all(base_url: str, secret: str, bodies: list[tuple[str, bytes]], clients: int,
             expect: int) -> dict:  # fmt: skip
    work: queue.Queue = queue.Queue()
    for item in bodies:
        work.put(item)
    failures, latencies, accepted = [], [], [0]
    lock = threading.Lock()
    headers = {"X-PushPilot-Key": secret, "Content-Type": "application/json"}

    def client() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            while True:
                try:
                    path, body = work.get_nowait()
                except queue.Empty:
                    return
                sent = time.perf_counter()
                response = http.post(path, content=body)
                took = time.perf_counter() - sent
                with lock:
                    latencies.append(took)
                    if response.status_code == 202 and not response.json()["rejected"]:
                        accepted[0] += response.json()["accepted"]
                    elif response.status_code in (200, 201):
                        accepted[0] += 1
                    else:
                        failures.append((response.status_code, response.text[:300]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures or accepted[0] != expect:
        raise RuntimeError(f"registration failed: {len(failures)} bad responses, {failures[:3]}")
    return {
        "devices": expect,
        "seconds": elapsed,
        "devices_per_s": expect / elapsed,
        "request_p50_ms": percentile(latencies, 50) * 1000,
        "request_p95_ms": percentile(latencies, 95) * 1000,
    }


def batch_bodies(devices: list[dict], size: int) -> list[tuple[str, bytes]]:
    return [
        ("/api/v1/devices/batch", json.dumps({"devices": devices[i : i + size]}).encode())
        for i in range(0, len(devices), size)
    ]


# --- 3. estimates at scale --------------------------------------------------------------------
def fill_registry(database_url: str, workspace_id, target: int) -> dict:
    """Top the registry up to `target` devices server-side, topics as registration computes
    them (sorted bytewise, like Python), then rebuild the counts from the rows."""
    from apps.devices import audience, topics
    from apps.devices.testing import SAMPLE_ZONES as ZONES

    params = {
        "ws": workspace_id,
        "zones": [topics.zone_topic(zone) for zone in ZONES],
        "languages": [topics.language_topic(tag) for tag in LANGUAGES],
        "apps": APP_TOPICS,
    }
    with psycopg.connect(database_url, autocommit=True) as conn:
        existing = conn.execute("SELECT count(*) FROM devices_device").fetchone()[0]
        missing = max(0, target - existing)
        started = time.perf_counter()
        chunk = 250_000
        for first in range(0, missing, chunk):
            last = min(missing, first + chunk) - 1
            conn.execute(
                f"""
                INSERT INTO devices_device ({", ".join(COPY_COLUMNS)})
                SELECT gen_random_uuid(), now(), now(), %(ws)s, md5('d' || g) || md5('e' || g),
                       'x', left(md5('d' || g), 8), (ARRAY['android', 'ios', 'web'])[1 + g %% 3],
                       'UTC', 'en', '', apps, (g / 7) %% 10,
                       (SELECT jsonb_agg(t ORDER BY t COLLATE "C") FROM jsonb_array_elements_text(
                            apps || jsonb_build_array(
                                (%(zones)s::text[])[1 + (g * 7) %% {len(ZONES)}],
                                (%(languages)s::text[])[1 + (g * 13) %% {len(LANGUAGES)}],
                                'pushpilot-bucket-' || ((g / 7) %% 10))) AS t),
                       '[]', 'active', '', false, '', now()
                FROM (
                    SELECT g, coalesce((
                        SELECT jsonb_agg(name ORDER BY name COLLATE "C")
                        FROM unnest(%(apps)s::text[]) WITH ORDINALITY AS a(name, i)
                        WHERE ((g * 2654435761) >> (i * 3)::int) %% 4 = 0), '[]'::jsonb) AS apps
                    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
                ) AS s
                """,
                {**params, "first": existing + first, "last": existing + last},
            )
            log(f"  devices: {existing + last + 1:,} / {target:,}")
        fill_seconds = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE devices_device")
    started = time.perf_counter()
    audience.rebuild(workspace_id)
    rebuild_seconds = time.perf_counter() - started
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE devices_audienceprofile")
        conn.execute("VACUUM ANALYZE devices_topicaudience")
        profiles = conn.execute("SELECT count(*) FROM devices_audienceprofile").fetchone()[0]
        total = conn.execute(
            "SELECT count(*) FROM devices_device WHERE status = 'active'"
        ).fetchone()[0]
    return {"devices": total, "profiles": profiles, "fill_seconds": fill_seconds,
            "rebuild_seconds": rebuild_seconds}  # fmt: skip


def random_targets(n: int) -> list[dict]:
    from apps.devices import topics
    from apps.devices.testing import SAMPLE_ZONES as ZONES

    pool = [*APP_TOPICS, *(topics.zone_topic(z) for z in ZONES),
            *(topics.language_topic(t) for t in LANGUAGES),
            *(topics.bucket_topic(b) for b in range(10))]  # fmt: skip
    rng = random.Random(5)

    def tree(budget: int):
        if budget == 1 or rng.random() < 0.3:
            node = ("topic", rng.choice(pool))
            return ("not", node) if rng.random() < 0.2 else node
        split = rng.randrange(1, budget)
        kind = rng.choice(["and", "or"])
        return (kind, [tree(split), tree(budget - split)])

    targets = []
    for i in range(n):
        if i % 5 == 0:
            targets.append({"topic": rng.choice(pool)})
        else:
            targets.append({"condition": render(tree(rng.randrange(2, 6)))})
    return targets


def render(node) -> str:
    kind, value = node
    if kind == "topic":
        return f"'{value}' in topics"
    if kind == "not":
        return f"!({render(value)})"
    return "(" + (" && " if kind == "and" else " || ").join(render(v) for v in value) + ")"


def as_sql(node) -> tuple[str, list]:
    kind, value = node
    if kind == "topic":
        return "topics ? %s", [value]
    if kind == "not":
        sql, params = as_sql(value)
        return f"NOT ({sql})", params
    parts = [as_sql(v) for v in value]
    joiner = " AND " if kind == "and" else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]


def raw_counts(database_url: str, workspace_id, targets: list[dict]) -> tuple[dict, list[int]]:
    from apps.integrations.firebase.validation import parse_condition

    timings, counts = [], []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for target in targets:
            node = (
                ("topic", target["topic"])
                if "topic" in target
                else parse_condition(target["condition"])[0]
            )
            where, params = as_sql(node)
            started = time.perf_counter()
            row = conn.execute(
                f"SELECT count(*) FROM devices_device WHERE workspace_id = %s "
                f"AND status = 'active' AND {where}",
                [workspace_id, *params],
            ).fetchone()
            timings.append(time.perf_counter() - started)
            counts.append(row[0])
    return _latencies(timings), counts


def api_estimates(base_url: str, access: str, workspace_id, targets: list[dict]):
    timings, counts = [], []
    headers = {"Authorization": f"Bearer {access}", "X-Workspace-ID": str(workspace_id)}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        for target in targets[:20]:  # warm up
            http.get("/api/v1/audience/estimate", params=target).raise_for_status()
        for target in targets:
            started = time.perf_counter()
            response = http.get("/api/v1/audience/estimate", params=target)
            timings.append(time.perf_counter() - started)
            response.raise_for_status()
            counts.append(response.json()["devices"])
        topic_timings = []
        for kind in [None, "app", "zone", "language", "bucket"] * 20:
            started = time.perf_counter()
            http.get("/api/v1/audience/topics", params={"kind": kind} if kind else {}
                     ).raise_for_status()  # fmt: skip
            topic_timings.append(time.perf_counter() - started)
    return _latencies(timings), counts, _latencies(topic_timings)


def _latencies(timings: list[float]) -> dict:
    return {
        "samples": len(timings),
        "p50_ms": percentile(timings, 50) * 1000,
        "p95_ms": percentile(timings, 95) * 1000,
    }


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20_000, help="registered via the API")
    parser.add_argument("--registry", type=int, default=1_000_000, help="0: skip part 3")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--clients", type=int, default=8, help="client threads posting")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="pushpilot-bench-devices-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = django_env(database_url, "bench_devices_settings", BENCH_SETTINGS)
    log(f"database {urlsplit(database_url).path.lstrip('/')}, logs in {log_dir}")

    recreate_database(database_url)
    migrate(env)
    setup_django()
    workspace, access, secret = make_fixtures()

    server = Gunicorn(log_dir, env, args.workers, args.threads)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.wait_ready()
        log(f"gunicorn: {args.workers} workers x {args.threads} threads; {args.clients} clients")
        warm = make_devices("w", 40 * args.workers * args.threads)
        post_all(server.base_url, secret, batch_bodies(warm, 10), args.clients, len(warm))

        n = args.devices
        copy = copy_baseline(database_url, workspace.pk, make_devices("c", n))
        log(f"1. COPY baseline: {copy['devices']:,} devices in {copy['seconds']:.2f} s "
            f"= {copy['devices_per_s']:,.0f} devices/s")  # fmt: skip
        batched = post_all(server.base_url, secret, batch_bodies(make_devices("b", n), 1000),
                           args.clients, n)  # fmt: skip
        batched["ratio"] = batched["devices_per_s"] / copy["devices_per_s"]
        log(f"2. POST /devices/batch of 1000: {n:,} devices in {batched['seconds']:.2f} s = "
            f"{batched['devices_per_s']:,.0f} devices/s (target >= {TARGET_DEVICES_PER_S}), "
            f"ratio to COPY {batched['ratio']:.3f}; request p50 {batched['request_p50_ms']:.0f} "
            f"ms, p95 {batched['request_p95_ms']:.0f} ms")  # fmt: skip
        singles = make_devices("s", max(n // 10, 100))
        single = post_all(
            server.base_url, secret,
            [("/api/v1/devices", json.dumps(d).encode()) for d in singles],
            args.clients, len(singles),
        )  # fmt: skip
        log(f"   POST /devices one at a time: {single['devices_per_s']:,.0f} devices/s; "
            f"request p50 {single['request_p50_ms']:.1f} ms, "
            f"p95 {single['request_p95_ms']:.1f} ms")  # fmt: skip
        summary = {"copy": copy, "batched": batched, "single": single}
        verdicts = {"registration devices/s": batched["devices_per_s"] >= TARGET_DEVICES_PER_S}

        if args.registry:
            log(f"3. filling the registry to {args.registry:,} devices ...")
            filled = fill_registry(database_url, workspace.pk, args.registry)
            log(f"   {filled['devices']:,} active devices, {filled['profiles']:,} audience "
                f"profiles; fill {filled['fill_seconds']:.0f} s, counts rebuilt in "
                f"{filled['rebuild_seconds']:.0f} s")  # fmt: skip
            targets = random_targets(300)
            raw, expected = raw_counts(database_url, workspace.pk, targets)
            ours, answered, listing = api_estimates(server.base_url, access, workspace.pk, targets)
            wrong = [(t, e, a) for t, e, a in zip(targets, expected, answered, strict=True)
                     if e != a]  # fmt: skip
            log(f"   raw count over the registry: p50 {raw['p50_ms']:.1f} ms, "
                f"p95 {raw['p95_ms']:.1f} ms ({raw['samples']} queries)")  # fmt: skip
            log(f"   GET /audience/estimate: p50 {ours['p50_ms']:.1f} ms, p95 "
                f"{ours['p95_ms']:.1f} ms (target <= {TARGET_ESTIMATE_P95_MS:.0f}), ratio "
                f"{ours['p95_ms'] / raw['p95_ms']:.3f}; {len(wrong)} answers differ from "
                f"the direct count")  # fmt: skip
            log(f"   GET /audience/topics: p50 {listing['p50_ms']:.1f} ms, "
                f"p95 {listing['p95_ms']:.1f} ms")  # fmt: skip
            summary.update(registry=filled, raw=raw, estimate=ours, topics=listing,
                           wrong=wrong[:5])  # fmt: skip
            verdicts["estimate p95"] = ours["p95_ms"] <= TARGET_ESTIMATE_P95_MS
            verdicts["estimates exact"] = not wrong
        summary["targets_met"] = verdicts
        print(json.dumps(summary, indent=2, default=str))
        if not all(verdicts.values()):
            sys.exit(1)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
