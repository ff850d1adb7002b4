"""Dispatch benchmark: the real dispatcher + Celery workers + fake FCM on PostgreSQL and Redis.

    DEBUG=false SECRET_KEY=... \\
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushpilot_bench \\
    REDIS_URL=redis://127.0.0.1:6379/11 \\
    .venv/bin/python bench/dispatch.py [--jobs 10000] [--window 60]

A script, not a test. It DROPS and re-creates its database (the name must contain "bench")
and FLUSHES its Redis database. The workers and the dispatcher are started exactly as
`make run` starts them (apps/common/management/commands/run_embedded.py: the worker's pool
and processes come from settings, sized for the machine), unless --workers/--concurrency say
otherwise. Each figure is compared with a raw baseline measured in the same run:

1. claims: a raw `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)` loop
   over a scratch table shaped like the deliveries table, against `claim_due()` in a loop
   (which also publishes each batch to Redis); then 1, 2 and 4 dispatcher processes over
   --scale-claims due deliveries;
2. sends: raw async loops posting the same message to the same fake FCM, with httpx (the
   issue's baseline) and with aiohttp (the library the workers use);
3. the spread run: --jobs deliveries spread over --window s: lateness (received by the fake
   - run_at), sends/s, CPU per send by process group, worker RSS after 100 and at the end;
4. the burst run: --jobs deliveries due at once: sends/s against the raw loops;
5. fairness: workspace A has --jobs deliveries due at t, workspace B one: B's lateness;
6. scale: CPU per send with 1,000, 10,000 and --scale-max deliveries due at once.
Every run checks that each delivery was sent exactly once. Exit status 0 only when every
target passes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import redis
from benchlib import PYTHON, ROOT, free_port, log, migrate, percentile, recreate_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pushpilot_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"

# The targets.
TARGET_P99_LATENESS = 1.0
TARGET_MAX_LATENESS = 2.0
TARGET_SEND_RATIO = 0.5
TARGET_CLAIM_RATIO = 0.3
TARGET_WORKER_MS_PER_SEND = 2.0
TARGET_FAIR_LATENESS = 1.0
TARGET_SCALE_GROWTH = 1.3
TARGET_RSS_RATIO = 1.2


# --- processes --------------------------------------------------------------------------------
class Processes:
    """Every child this script starts, each in its own session so Ctrl-C reaches only us and
    we stop them in order (a prefork worker's pool children go with its process group)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "a")  # noqa: SIM115 (closed in stop())
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        process.name, process.log_path, process.log_file = name, log_path, log_file
        self.running.append(process)
        return process

    def wait_for_log(self, process: subprocess.Popen, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in process.log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = process.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{process.name} did not become ready:\n{tail}")
            time.sleep(0.1)

    def stop(self, process: subprocess.Popen, timeout: float = 20) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # a pool child may outlive its parent
        process.log_file.close()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def tree_rss_kb(pid: int) -> int:
    total = 0
    for current in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _by_name(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    pids.append(int(entry))
    return pids


class CpuMeter:
    """CPU seconds per process group between start() and stop(): where the cores went."""

    def __init__(self, groups) -> None:
        self.groups = groups  # () -> {name: [pids]}

    def snapshot(self) -> dict[str, dict[int, int]]:
        return {
            name: {pid: _cpu_ticks(pid) for pid in pids} for name, pids in self.groups().items()
        }

    def start(self) -> None:
        self.before, self.busy_before = self.snapshot(), machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        after, tick = self.snapshot(), os.sysconf("SC_CLK_TCK")
        used = {
            name: sum(t - self.before.get(name, {}).get(pid, 0) for pid, t in pids.items()) / tick
            for name, pids in after.items()
        }
        used["other processes"] = max(
            0.0, machine_busy_seconds() - self.busy_before - sum(used.values())
        )
        return used


def machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


# --- Django-side helpers ----------------------------------------------------------------------
def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def make_workspace(fake_url: str, name: str, account: dict):
    from apps.accounts.models import User
    from apps.integrations.firebase.testing import make_firebase_config
    from apps.workspaces.services import create_workspace

    user = User.objects.create_user(email=f"{name}@example.com", password=uuid.uuid4().hex)
    workspace = create_workspace(owner=user, name=name)
    make_firebase_config(workspace, info=account)
    return workspace


def create_due(workspace, n: int, at: datetime) -> None:
    from apps.notifications.testing import make_due_campaigns

    make_due_campaigns(workspace, n, at=at)


def sql(statement: str, params=()) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def reset_all() -> None:
    """Empty the campaigns (and, by cascade, occurrences, deliveries, notifications), the
    audit log and the rollups: bench database only."""
    sql("TRUNCATE campaigns_campaign, common_auditlog, analytics_eventrollup CASCADE")


def spread(start: datetime, step: float) -> None:
    """Give the due deliveries their run_at in one statement, once the data exists, so that
    creating them does not eat into the lead time."""
    sql(
        """WITH ordered AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i
                            FROM notifications_delivery)
           UPDATE notifications_delivery d
              SET run_at = %s + ordered.i * %s * interval '1 second', due_at = %s + ordered.i * %s * interval '1 second'
             FROM ordered WHERE d.id = ordered.id""",
        [start, step, start, step],
    )
    sql(
        """UPDATE notifications_occurrence o SET at = d.run_at
             FROM notifications_delivery d WHERE d.occurrence_id = o.id"""
    )
    sql("ANALYZE")


def flush_redis(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()


# --- 1. claims --------------------------------------------------------------------------------
def baseline_claims(database_url: str, n: int, size: int) -> dict:
    """A bare SKIP LOCKED claim loop, `size` rows a statement (the dispatcher's claim size),
    over a scratch copy of the deliveries table: the same columns, constraints and indexes."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_claim")
        conn.execute("CREATE TABLE bench_claim (LIKE notifications_delivery INCLUDING ALL)")
        conn.execute(
            """INSERT INTO bench_claim (id, created_at, updated_at, workspace_id, campaign_id,
                   occurrence_id, slice, language, variant, topic, condition, run_at, due_at,
                   status, attempts, last_error)
               SELECT gen_random_uuid(), now(), now(), '00000000-0000-0000-0000-000000000001',
                      gen_random_uuid(), gen_random_uuid(), '', '', '', 'news', '', t, t,
                      'pending', 0, ''
               FROM (SELECT now() - random() * interval '60 seconds' AS t
                     FROM generate_series(1, %s)) times""",
            [n],
        )
        conn.execute("ANALYZE bench_claim")
        claimed, started = 0, time.perf_counter()
        while True:
            rows = conn.execute(
                """UPDATE bench_claim SET status = 'queued', claim_token = gen_random_uuid(),
                          claimed_at = now(), lease_expires_at = now() + interval '60 seconds',
                          updated_at = now()
                   WHERE id IN (SELECT id FROM bench_claim
                                WHERE status = 'pending' AND due_at <= now()
                                ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)
                   RETURNING id, workspace_id""",
                [size],
            ).fetchall()
            if not rows:
                break
            claimed += len(rows)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_claim")
    assert claimed == n, (claimed, n)
    return {"jobs": claimed, "seconds": elapsed, "per_second": claimed / elapsed}


def our_claims(workspace, n: int, redis_url: str) -> dict:
    from django.db import connection
    from django.utils import timezone

    from apps.notifications.dispatcher import DueCounts, claim_due

    reset_all()
    create_due(workspace, n, timezone.now() - timedelta(seconds=60))
    sql("ANALYZE")
    # A dispatcher is a long-lived process: its imports are done and its broker connection is
    # open before it claims. So here too (one message, flushed before the clock starts).
    from apps.notifications.tasks import send_deliveries

    send_deliveries.apply_async(args=(str(uuid.uuid4()), []))
    flush_redis(redis_url)
    connection.close()
    connection.ensure_connection()
    claimed, batches, started, counts = 0, 0, time.perf_counter(), DueCounts()
    while published := claim_due(counts=counts):  # as the dispatcher loop claims
        claimed += sum(len(ids) for _, ids in published)
        batches += len(published)
    elapsed = time.perf_counter() - started
    queued = redis.Redis.from_url(redis_url).llen("notifications")
    flush_redis(redis_url)  # nothing may ever run these
    assert claimed == n, (claimed, n)
    assert queued == batches, f"{queued} batch messages in Redis for {batches} batches"
    return {
        "jobs": claimed,
        "seconds": elapsed,
        "per_second": claimed / elapsed,
        "batches": batches,
    }


CLAIMER = """
import os, sys, time
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from apps.notifications.dispatcher import DueCounts, claim_due
from django.db import connection
connection.ensure_connection()
counts = DueCounts()  # as the dispatcher loop keeps it
while time.time() < {at}:
    time.sleep(0.001)
claimed = 0
while published := claim_due(counts=counts):
    claimed += sum(len(ids) for _, ids in published)
print("claimed", claimed, time.time(), flush=True)
"""


RAW_CLAIMER = """
import psycopg, sys, time
conn = psycopg.connect(sys.argv[1], autocommit=True)
while time.time() < {at}:
    time.sleep(0.001)
claimed = 0
while rows := conn.execute(
    "UPDATE bench_claim SET status = 'queued', claim_token = gen_random_uuid(), "
    "claimed_at = now(), lease_expires_at = now() + interval '60 seconds', updated_at = now() "
    "WHERE id IN (SELECT id FROM bench_claim WHERE status = 'pending' AND due_at <= now() "
    "ORDER BY due_at LIMIT {size} FOR UPDATE SKIP LOCKED) RETURNING id, workspace_id"
).fetchall():
    claimed += len(rows)
print("claimed", claimed, time.time(), flush=True)
"""


def _race(code: str, count: int, env, argv=()) -> tuple[int, float]:
    """`count` processes running `code` from the same instant: (rows claimed, claims/s)."""
    at = time.time() + 3.0
    processes = [
        subprocess.Popen([PYTHON, "-c", code.format(root=str(ROOT), at=at,
                          size=_claim_size()), *argv], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(count)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0].split() for p in processes]
    total = sum(int(out[1]) for out in outputs)
    return total, total / (max(float(out[2]) for out in outputs) - at)


def _claim_size() -> int:
    from django.conf import settings

    return settings.DISPATCH_CLAIM_SIZE


def dispatcher_scaling(workspace, n: int, counts, env, redis_url, database_url) -> dict:
    """1, 2, 4 ... dispatcher processes claiming the same n due deliveries, and as many raw
    SKIP LOCKED loops over a copy of the table: claims/s for each, same run."""
    from django.utils import timezone

    reset_all()
    create_due(workspace, n, timezone.now() - timedelta(seconds=60))
    sql("DROP TABLE IF EXISTS bench_claim")
    sql("CREATE TABLE bench_claim (LIKE notifications_delivery INCLUDING ALL)")
    sql("INSERT INTO bench_claim SELECT * FROM notifications_delivery")
    results = {}
    for count in counts:
        for table in ("notifications_delivery", "bench_claim"):
            sql(f"UPDATE {table} SET status = 'pending', claim_token = NULL, "
                "lease_expires_at = NULL")  # fmt: skip
            sql(f"VACUUM ANALYZE {table}")
        flush_redis(redis_url)
        total, ours = _race(CLAIMER, count, env)
        assert total == n, (count, total, n)
        total, raw = _race(RAW_CLAIMER, count, env, [database_url])
        assert total == n, (count, total, n)
        results[count] = (ours, raw)
        log(f"  {count} dispatcher(s): {ours:.0f} claims/s; {count} raw loop(s): {raw:.0f} rows/s")
    sql("DROP TABLE bench_claim")
    flush_redis(redis_url)
    return results


# --- 2. raw send loops --------------------------------------------------------------------------
def access_token(account: dict) -> str:
    import urllib3
    from google.auth.transport.urllib3 import Request
    from google.oauth2 import service_account

    from apps.integrations.firebase.client import FCM_SCOPE

    credentials = service_account.Credentials.from_service_account_info(account, scopes=[FCM_SCOPE])
    credentials.refresh(Request(urllib3.PoolManager()))
    return credentials.token


def sample_message(workspace) -> dict:
    """The exact message a worker sends for a bench delivery (built by the same code)."""
    from apps.campaigns.models import Campaign, CampaignContent
    from apps.campaigns.services import message_for

    campaign = Campaign(workspace=workspace, name="c0", topic="news", status="scheduled")
    content = CampaignContent(campaign=campaign, position=0, title="c0 #0", subtitle="body")
    return message_for(campaign, content, target={"topic": "news"}, notification_id=uuid.uuid4())


def _bodies(template: dict, total: int) -> list[bytes]:
    bodies = []
    for _ in range(total):
        message = json.loads(json.dumps(template))
        message["apns"]["headers"]["apns-collapse-id"] = uuid.uuid4().hex
        bodies.append(json.dumps({"message": message}).encode())
    return bodies


async def _httpx_loop(url, token, bodies, concurrency):
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    remaining = iter(bodies)
    async with httpx.AsyncClient(http2=False, limits=limits, timeout=30) as client:

        async def sender():
            for body in remaining:
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code == 200, response.text[:200]

        await asyncio.gather(*(sender() for _ in range(concurrency)))


async def _aiohttp_loop(url, token, bodies, concurrency):
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    remaining = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def sender():
            for body in remaining:
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, (await response.text())[:200]
                    await response.read()

        await asyncio.gather(*(sender() for _ in range(concurrency)))


def baseline_sends(loop, fake_url, account, workspace, total, concurrency) -> dict:
    url = f"{fake_url}/v1/projects/{account['project_id']}/messages:send"
    bodies = _bodies(sample_message(workspace), total)
    asyncio.run(loop(url, access_token(account), bodies, concurrency))
    received = [m["received_at"] for m in fake_messages(fake_url)]
    httpx.delete(f"{fake_url}/_fake/messages", timeout=30).raise_for_status()
    return {
        "sends": len(received),
        "per_second": (len(received) - 1) / (max(received) - min(received)),
    }


def fake_messages(fake_url: str) -> list[dict]:
    response = httpx.get(f"{fake_url}/_fake/messages", timeout=300)
    response.raise_for_status()
    return response.json()["messages"]


# --- 3-6. real runs ---------------------------------------------------------------------------
@dataclass
class Stack:
    """The workers and the dispatcher as users start them: `make run`'s own process
    (`manage.py run_embedded`, web server included) with --stack make-run, else its worker and
    dispatcher commands (apps/common/management/commands/run_embedded.py) started directly."""

    processes: Processes
    env: dict[str, str]
    worker_args: list[str]
    fake_pid: int
    mode: str = "processes"
    owned: list = field(default_factory=list)
    worker_pids: list = field(default_factory=list)
    dispatcher_pid: int = 0

    def start(self, label: str, count: int) -> None:
        if self.mode == "make-run":
            self._start_make_run(label)
            return
        from apps.common.management.commands.run_embedded import embedded_services

        services = {s.name: s.argv for s in embedded_services(8000, with_fake_fcm=False)}
        workers = []
        for i in range(count):
            argv = [*services["worker"], *self.worker_args, "--hostname",
                    f"bench-{label}-{i}-{os.getpid()}@%h", "--without-heartbeat"]  # fmt: skip
            workers.append(self.processes.start(f"{label}-worker-{i}", argv, self.env))
        for worker in workers:
            self.processes.wait_for_log(worker, "ready.")
        dispatcher = self.processes.start(f"{label}-dispatcher", services["dispatcher"], self.env)
        self.processes.wait_for_log(dispatcher, "dispatcher_started")
        self.owned = [dispatcher, *workers]
        self.worker_pids = [w.pid for w in workers]
        self.dispatcher_pid = dispatcher.pid

    def _start_make_run(self, label: str) -> None:
        """What `make run` runs (after its migrate), with this run's DATABASE_URL, REDIS_URL
        and FCM_BASE_URL: the web server, the worker and the dispatcher."""
        argv = [PYTHON, "manage.py", "run_embedded", "--port", str(free_port())]
        embedded = self.processes.start(f"{label}-make-run", argv, self.env)
        self.processes.wait_for_log(embedded, "ready.")
        self.processes.wait_for_log(embedded, "dispatcher_started")
        children = {pid: _cmdline(pid) for pid in _tree(embedded.pid) if pid != embedded.pid}
        self.worker_pids = [pid for pid, cmd in children.items() if " worker " in cmd
                            and _parent(pid) == embedded.pid]  # fmt: skip
        [self.dispatcher_pid] = [pid for pid, cmd in children.items() if cmd.endswith(" dispatch")]
        self.owned = [embedded]

    def stop(self) -> None:
        for process in self.owned:
            self.processes.stop(process)
        self.owned, self.worker_pids, self.dispatcher_pid = [], [], 0

    def groups(self) -> dict[str, list[int]]:
        return {
            "workers": [pid for w in self.worker_pids for pid in _tree(w)],
            "dispatcher": [self.dispatcher_pid] if self.dispatcher_pid else [],
            "fake FCM": _tree(self.fake_pid),
            "postgres": _by_name("postgres"),
            "redis": _by_name("redis-server"),
            "bench (this script)": [os.getpid()],
        }

    def rss_kb(self) -> int:
        return sum(tree_rss_kb(pid) for pid in self.worker_pids)

    def alive(self) -> bool:
        return all(
            Path(f"/proc/{pid}").exists() for pid in [self.dispatcher_pid, *self.worker_pids]
        )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


@dataclass
class RunResult:
    label: str
    jobs: int
    sends: int = 0
    statuses: dict = field(default_factory=dict)
    duplicates: int = 0
    missing: int = 0
    lateness: list[float] = field(default_factory=list)
    lateness_by_workspace: dict = field(default_factory=dict)
    claim_delay: list[float] = field(default_factory=list)
    queue_wait: list[float] = field(default_factory=list)
    send_path: list[float] = field(default_factory=list)
    per_second: float = 0.0
    span: float = 0.0
    rss_by_sends: dict = field(default_factory=dict)
    timed_out: bool = False
    cpu: dict = field(default_factory=dict)
    wall: float = 0.0

    @property
    def exactly_once(self) -> bool:
        return (
            self.sends == self.jobs
            and not self.duplicates
            and not self.missing
            and not self.timed_out
        )

    def ms_per_send(self, group: str) -> float:
        return 1000 * self.cpu.get(group, 0.0) / self.sends if self.sends else math.nan

    @property
    def engine_ms_per_send(self) -> float:
        """Worker + dispatcher + PostgreSQL + Redis: what the engine costs (not the fake)."""
        return sum(self.ms_per_send(g) for g in ("workers", "dispatcher", "postgres", "redis"))

    def rss_ratio(self, low: int = 100, high: int = 10_000) -> float:
        points = sorted(self.rss_by_sends.items())
        start = next((kb for sends, kb in points if sends >= low), None)
        end = next((kb for sends, kb in points if sends >= high), points[-1][1] if points else None)
        return end / start if start and end else math.nan


def real_run(label, stack: Stack, plan, *, fake_url, redis_url, timeout) -> RunResult:
    """`plan(start)` creates the due deliveries (with run_at from `start`) and returns how many;
    the workers and the dispatcher must be running."""
    from django.db import connection
    from django.db.models import Count

    from apps.notifications.models import Delivery, Notification

    reset_all()
    flush_redis(redis_url)
    httpx.delete(f"{fake_url}/_fake/messages", timeout=30).raise_for_status()
    n, window = plan()
    result = RunResult(label=label, jobs=n)
    meter = CpuMeter(stack.groups)
    meter.start()
    wall_started = time.monotonic()
    sent_q = Notification.objects.filter(status="sent")
    finished = Delivery.objects.filter(status__in=("completed", "failed", "skipped"))
    deadline = time.monotonic() + window + timeout
    milestones = (100, 1000, 2000, 5000, 10_000, 20_000, 50_000)
    while True:
        time.sleep(0.25)
        sent = sent_q.count()
        for milestone in milestones:
            if sent >= milestone and milestone not in result.rss_by_sends:
                result.rss_by_sends[milestone] = stack.rss_kb()
        if finished.count() >= n:
            break
        if time.monotonic() > deadline:
            result.timed_out = True
            log(f"{label}: timed out with {finished.count()}/{n} deliveries finished")
            break
        if not stack.alive():
            raise RuntimeError(f"{label}: a worker or the dispatcher exited; see the logs")
    result.rss_by_sends[sent_q.count()] = stack.rss_kb()
    result.cpu = meter.stop()
    result.wall = time.monotonic() - wall_started
    result.statuses = dict(
        Delivery.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    rows = {
        pk.hex: (run_at.timestamp(), workspace, claimed and claimed.timestamp(),
                 started and started.timestamp())
        for pk, run_at, workspace, claimed, started in Notification.objects.values_list(
            "pk", "delivery__run_at", "workspace__name", "delivery__claimed_at",
            "delivery__started_at")
    }  # fmt: skip
    connection.close()
    seen: set[str] = set()
    received_times = []
    for message in fake_messages(fake_url):
        key = message["message"]["apns"]["headers"]["apns-collapse-id"]
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        run_at, workspace, claimed, started = rows[key]
        received = message["received_at"]
        received_times.append(received)
        result.lateness.append(received - run_at)
        result.lateness_by_workspace.setdefault(workspace, []).append(received - run_at)
        if claimed and started:
            result.claim_delay.append(claimed - run_at)
            result.queue_wait.append(started - claimed)
            result.send_path.append(received - started)
    result.sends = len(received_times)
    result.missing = n - len(seen)
    if len(received_times) > 1:
        result.span = max(received_times) - min(received_times)
        result.per_second = (len(received_times) - 1) / result.span
    return result


def print_run(result: RunResult) -> None:
    def dist(values):
        if not values:
            return "n/a"
        return (f"p50 {percentile(values, 50):7.3f}  p99 {percentile(values, 99):7.3f}  "
                f"max {max(values):7.3f}")  # fmt: skip

    print(
        f"\n  {result.label}: {result.sends}/{result.jobs} sent in {result.span:.1f} s "
        f"({result.per_second:.0f}/s), statuses {result.statuses}, duplicates "
        f"{result.duplicates}, missing {result.missing}{', TIMED OUT' if result.timed_out else ''}"
    )
    print(f"    lateness (received - run_at) s   {dist(result.lateness)}")
    for workspace, values in sorted(result.lateness_by_workspace.items()):
        if len(result.lateness_by_workspace) > 1:
            print(f"      workspace {workspace:<8} ({len(values):>6})  {dist(values)}")
    print(f"    - claim delay (claimed - run_at)  {dist(result.claim_delay)}")
    print(f"    - queue wait (started - claimed)  {dist(result.queue_wait)}")
    print(f"    - send path (received - started)  {dist(result.send_path)}")
    curve = ", ".join(f"{k}: {v / 1024:.0f}" for k, v in sorted(result.rss_by_sends.items()))
    print(f"    worker RSS (MiB) by sends: {curve}")
    busy = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.cpu.items())
    print(f"    CPU seconds over {result.wall:.1f} s wall: {busy}")
    if result.sends:
        per = ", ".join(f"{k} {result.ms_per_send(k):.2f}" for k in result.cpu)
        print(f"    CPU ms per send: {per}; engine (workers+dispatcher+postgres+redis) "
              f"{result.engine_ms_per_send:.2f}")  # fmt: skip


# --- report -------------------------------------------------------------------------------------
class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append((name, value, target, "" if ok is None else ("PASS" if ok else "MISS")))

    def print(self) -> bool:
        width = max(len(r[0]) for r in self.rows)
        print("\n" + "=" * (width + 44))
        print(f"{'figure':<{width}}  {'value':>16}  {'target':>12}  result")
        print("-" * (width + 44))
        for name, value, target, result in self.rows:
            print(f"{name:<{width}}  {value:>16}  {target:>12}  {result}")
        print("=" * (width + 44))
        return all(r[3] != "MISS" for r in self.rows)


# --- main ---------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="deliveries per run (10000)")
    parser.add_argument("--window", type=float, default=60.0, help="spread of run_at (s)")
    parser.add_argument("--lead", type=float, default=3.0, help="first run_at, s from now")
    parser.add_argument("--stack", choices=("processes", "make-run"), default="processes",
                        help="processes: make run's worker and dispatcher commands, started "
                        "here; make-run: `manage.py run_embedded` itself (web server too)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes as `make run` starts them (1; each sized by settings)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=0,
                        help="override the worker's pool processes (default: settings)")  # fmt: skip
    parser.add_argument("--raw-sends", type=int, default=5000, help="raw send loop size")
    parser.add_argument("--raw-concurrency", type=int, default=16)
    parser.add_argument("--scale-max", type=int, default=50_000,
                        help="the largest scale run (50000; 0 skips the scale runs)")  # fmt: skip
    parser.add_argument("--scale-claims", type=int, default=100_000,
                        help="due deliveries for the 1/2/4-dispatcher claims (100000; 0 skips)")  # fmt: skip
    parser.add_argument("--only", default="",
                        help="comma-separated phases: claims,scaling,sends,spread,burst,fair,scale")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="extra seconds after a run's window before giving up")  # fmt: skip
    return parser.parse_args()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    phases = set(args.only.split(",")) if args.only else {
        "claims", "scaling", "sends", "spread", "burst", "fair", "scale"}  # fmt: skip
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    if not database_url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must be PostgreSQL")
    log_dir = Path(tempfile.mkdtemp(prefix="pushpilot-bench-"))
    processes = Processes(log_dir)
    began = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    report = Report()
    try:
        log(f"recreating {urlsplit(database_url).path.lstrip('/')} and flushing {redis_url}; "
            f"logs in {log_dir}")  # fmt: skip
        recreate_database(database_url)
        flush_redis(redis_url)
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        migrate(base_env)
        port = free_port()
        fake = processes.start(
            "fake-fcm", [PYTHON, "-m", "apps.integrations.firebase.fake", "--port", str(port)],
            base_env,
        )  # fmt: skip
        fake_url = f"http://127.0.0.1:{port}"
        processes.wait_for_log(fake, fake_url)
        env = {**base_env, "FCM_BASE_URL": fake_url}

        setup_django()
        from django.conf import settings
        from django.utils import timezone

        from apps.integrations.firebase.fake import make_demo_service_account

        account = make_demo_service_account("bench-project", token_uri=f"{fake_url}/token")
        httpx.post(f"{fake_url}/_fake/accounts", json=account, timeout=10).raise_for_status()
        workspace = make_workspace(fake_url, "A", account)
        other = make_workspace(fake_url, "B", account)
        claim_size = settings.DISPATCH_CLAIM_SIZE

        if "claims" in phases:
            log(f"claims: raw SKIP LOCKED loop over {args.jobs} rows, {claim_size} a statement")
            raw = baseline_claims(database_url, args.jobs, claim_size)
            log(f"  {raw['per_second']:.0f} rows/s")
            log(f"claims: claim_due() over {args.jobs} due deliveries (publishing to Redis)")
            ours = our_claims(workspace, args.jobs, redis_url)
            log(f"  {ours['per_second']:.0f} claims/s in {ours['batches']} batch messages")
            report.add(
                "raw SKIP LOCKED claim loop (rows/s)", f"{raw['per_second']:.0f}", "baseline"
            )
            report.add("claim_due() incl. publishing (claims/s)", f"{ours['per_second']:.0f}")
            ratio = ours["per_second"] / raw["per_second"]
            report.add("  ratio to raw claim loop", f"{ratio:.2f}", f">= {TARGET_CLAIM_RATIO}",
                       ratio >= TARGET_CLAIM_RATIO)  # fmt: skip
        if "scaling" in phases and args.scale_claims:
            log(f"claims: 1, 2, 4 dispatcher processes over {args.scale_claims} due deliveries")
            rates = dispatcher_scaling(workspace, args.scale_claims, (1, 2, 4), env, redis_url,
                                       database_url)  # fmt: skip
            ours = [rates[k][0] for k in (1, 2, 4)]
            report.add("claims/s with 1 / 2 / 4 dispatchers",
                       " / ".join(f"{r:.0f}" for r in ours), "grows",
                       ours[0] < ours[1] < ours[2])  # fmt: skip
            report.add("  raw SKIP LOCKED loops, 1 / 2 / 4 processes",
                       " / ".join(f"{rates[k][1]:.0f}" for k in (1, 2, 4)), "baseline")  # fmt: skip

        raw_sends = {}
        if phases & {"sends", "burst"}:
            for name, loop in (("httpx", _httpx_loop), ("aiohttp", _aiohttp_loop)):
                log(
                    f"sends: raw async {name} loop, {args.raw_sends} sends, {args.raw_concurrency} in flight"
                )
                raw_sends[name] = baseline_sends(loop, fake_url, account, workspace, args.raw_sends,
                                                 args.raw_concurrency)["per_second"]  # fmt: skip
                log(f"  {raw_sends[name]:.0f} sends/s")
                report.add(
                    f"raw async {name} send loop (sends/s)", f"{raw_sends[name]:.0f}", "baseline"
                )

        worker_args = ["--concurrency", str(args.concurrency)] if args.concurrency else []
        stack = Stack(processes, env, worker_args, fake.pid, mode=args.stack)
        stack.start("bench", args.workers)
        log(f"stack: {args.stack}; {len(stack.worker_pids)} x `celery worker` as make run starts "
            f"it ({'concurrency ' + str(args.concurrency) if args.concurrency else 'pool from settings'}),"
            f" one dispatcher")  # fmt: skip
        runs = {}
        common = dict(fake_url=fake_url, redis_url=redis_url, timeout=args.timeout)

        if "spread" in phases:

            def spread_plan():
                placeholder = timezone.now() + timedelta(days=1)
                create_due(workspace, args.jobs, placeholder)
                spread(timezone.now() + timedelta(seconds=args.lead), args.window / args.jobs)
                return args.jobs, args.lead + args.window

            log(f"spread: {args.jobs} deliveries over {args.window:g} s")
            runs["spread"] = run = real_run("spread", stack, spread_plan, **common)
            print_run(run)
            p99, worst = percentile(run.lateness, 99), max(run.lateness, default=math.nan)
            report.add("lateness p50 (s), spread", f"{percentile(run.lateness, 50):.3f}")
            report.add("lateness p99 (s), spread", f"{p99:.3f}", f"<= {TARGET_P99_LATENESS:g}",
                       p99 <= TARGET_P99_LATENESS and run.exactly_once)  # fmt: skip
            report.add("lateness max (s), spread", f"{worst:.3f}", f"<= {TARGET_MAX_LATENESS:g}",
                       worst <= TARGET_MAX_LATENESS)  # fmt: skip

        def burst_plan(n, workspaces=((None, 0),)):
            def plan():
                at = timezone.now() + timedelta(days=1)
                create_due(workspace, n, at)
                for extra, count in workspaces:
                    if extra is not None:
                        create_due(extra, count, at)
                due = timezone.now() + timedelta(seconds=args.lead)
                sql("UPDATE notifications_delivery SET run_at = %s, due_at = %s", [due, due])
                sql("UPDATE notifications_occurrence SET at = %s", [due])
                sql("ANALYZE")
                return n + sum(count for _, count in workspaces), args.lead

            return plan

        if "burst" in phases:
            log(f"burst: {args.jobs} deliveries due at once")
            runs["burst"] = run = real_run("burst", stack, burst_plan(args.jobs), **common)
            print_run(run)
            report.add("sends/s, burst", f"{run.per_second:.0f}")
            for name, rate in raw_sends.items():
                ratio = run.per_second / rate
                report.add(f"  ratio to raw {name} loop", f"{ratio:.2f}", f">= {TARGET_SEND_RATIO}",
                           ratio >= TARGET_SEND_RATIO if name == "httpx" else None)  # fmt: skip
            report.add("worker CPU ms per send, burst", f"{run.ms_per_send('workers'):.2f}",
                       f"<= {TARGET_WORKER_MS_PER_SEND}",
                       run.ms_per_send("workers") <= TARGET_WORKER_MS_PER_SEND)  # fmt: skip
            report.add("PostgreSQL CPU ms per send, burst", f"{run.ms_per_send('postgres'):.2f}")
            report.add("dispatcher CPU ms per send, burst", f"{run.ms_per_send('dispatcher'):.2f}")

        if "fair" in phases:
            log(f"fairness: workspace A {args.jobs} deliveries due at t, workspace B one")
            runs["fair"] = run = real_run(
                "fair", stack, burst_plan(args.jobs, ((other, 1),)), **common
            )
            print_run(run)
            b = run.lateness_by_workspace.get("B", [math.inf])
            report.add("workspace B's lateness behind A's burst (s)", f"{max(b):.3f}",
                       f"<= {TARGET_FAIR_LATENESS:g}", max(b) <= TARGET_FAIR_LATENESS)  # fmt: skip

        if "scale" in phases and args.scale_max:
            costs = {}
            for n in sorted({1000, 10_000, args.scale_max}):
                log(f"scale: {n} deliveries due at once")
                runs[f"scale {n}"] = run = real_run(f"scale {n}", stack, burst_plan(n), **common)
                print_run(run)
                costs[n] = run.engine_ms_per_send
            growth = costs[args.scale_max] / costs[1000]
            report.add("engine CPU ms per send, 1k / 10k / max",
                       " / ".join(f"{costs[n]:.2f}" for n in sorted(costs)))  # fmt: skip
            report.add(f"  growth 1,000 -> {args.scale_max:,}", f"{growth:.2f}x",
                       f"<= {TARGET_SCALE_GROWTH}x", growth <= TARGET_SCALE_GROWTH)  # fmt: skip
        stack.stop()

        for label, run in runs.items():
            if run.sends >= 10_000:
                ratio = run.rss_ratio()
                report.add(f"worker RSS after 10,000 / after 100 sends, {label}", f"{ratio:.2f}",
                           f"<= {TARGET_RSS_RATIO}", ratio <= TARGET_RSS_RATIO)  # fmt: skip
        once = all(run.exactly_once for run in runs.values())
        report.add("every delivery sent exactly once, none missing", "yes" if once else "NO",
                   "yes", once)  # fmt: skip

        print(
            f"\ncommand: {' '.join(sys.argv)}  (DATABASE_URL={database_url} REDIS_URL={redis_url})"
        )
        print(f"settings: DISPATCH_CLAIM_SIZE {claim_size}, DELIVERY_BATCH_SIZE "
              f"{settings.DELIVERY_BATCH_SIZE}, DISPATCH_MAX_QUEUED {settings.DISPATCH_MAX_QUEUED}, "
              f"worker pool {settings.CELERY_WORKER_POOL} x {args.concurrency or settings.CELERY_WORKER_CONCURRENCY}; "
              f"{os.cpu_count()} CPUs; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
              f"total {time.monotonic() - began:.0f} s")  # fmt: skip
        return 0 if report.print() else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        processes.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
