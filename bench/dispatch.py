"""Dispatch benchmark: real dispatcher + Celery worker(s) + fake FCM on PostgreSQL and Redis.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushpilot_bench \\
    REDIS_URL=redis://127.0.0.1:6379/11 \\
    .venv/bin/python bench/dispatch.py [--jobs 10000] [--window 60]

It is a script, not a test. It DROPS and re-creates its database (the name must contain
"bench") and FLUSHES its Redis database, then measures, in one run:

1. baseline claim loop: a raw psycopg `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
   LOCKED LIMIT 200) RETURNING id` over N rows of a scratch table shaped like the jobs table
   -> jobs/s;
2. our claims: `claim_due_jobs()` in a loop over N due jobs (each claim enqueues its tasks to
   Redis; no worker runs, the queue is flushed afterwards) -> claims/s and the ratio to (1),
   plus the cost of the enqueue alone (N bare `apply_async` calls) to show where time goes;
3. baseline send loop: asyncio + httpx (HTTP/1.1, 16 in flight) posting the same message
   shape to the same fake FCM with a real OAuth token -> sends/s;
4. the real run: N one-off campaigns, one job each, run_at spread uniformly over `--window`
   seconds starting `--lead` seconds ahead; worker(s) + one `manage.py dispatch` process;
   lateness = time the fake received the message - the job's run_at (p50/p99/max),
   sends/s = messages / (last received - first received), worker RSS (process tree, VmRSS)
   after the 100th send and at the end;
5. (unless --burst-jobs 0) the same with every job due at once (2,000 by default): the
   throughput ceiling, since a spread schedule caps sends/s at N / window.

Every process it starts (fake FCM, workers, dispatcher) is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
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
CLAIM_BATCH = 200  # the dispatcher's default DISPATCH_BATCH_SIZE; the baseline uses the same

# The targets.
TARGET_P99_LATENESS = 1.0
TARGET_SEND_RATIO = 0.5
TARGET_CLAIM_RATIO = 0.3
TARGET_RSS_GROWTH = 0.20


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
            argv,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
        # A prefork pool child may outlive a parent that was told to stop.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.log_file.close()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and all its descendants (a prefork pool's children included)."""
    total = 0
    for current in _tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime of this process


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


def _by_name(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    pids.append(int(entry))
    return pids


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, dict[int, int]]:
    """CPU ticks per process of each group: where the machine's two cores go during a run.
    Worker groups are process trees; `postgres` and `redis` are every process of that name
    (the server is shared with anything else running, which the bench itself keeps idle)."""
    return {name: {pid: _cpu_ticks(pid) for pid in pids} for name, pids in groups.items()}


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent busy since boot (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    return {
        name: sum(t - before.get(name, {}).get(pid, 0) for pid, t in after[name].items()) / tick
        for name in after
    }


# --- database and broker ----------------------------------------------------------------------


def flush_redis(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()


# --- data ---------------------------------------------------------------------------------------
def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def make_workspace(fake_url: str):
    from apps.accounts.models import User
    from apps.integrations.firebase.fake import make_demo_service_account
    from apps.integrations.firebase.testing import make_firebase_config
    from apps.workspaces.services import create_workspace

    user = User.objects.create_user(email="bench@example.com", password=secrets.token_urlsafe())
    workspace = create_workspace(owner=user, name="Bench")
    account = make_demo_service_account("bench-project", token_uri=f"{fake_url}/token")
    httpx.post(f"{fake_url}/_fake/accounts", json=account, timeout=10).raise_for_status()
    make_firebase_config(workspace, info=account)
    return workspace, account


def create_jobs(workspace, run_ats: list[datetime]) -> float:
    """One scheduled one-off campaign per run_at, one content each, one job each (bulk, the
    way apps/notifications/tests/test_real_worker.py does it). Returns seconds taken."""
    from apps.campaigns.models import Campaign, CampaignContent
    from apps.notifications.models import ScheduledJob

    started = time.perf_counter()
    campaigns = Campaign.objects.bulk_create(
        (
            Campaign(
                workspace=workspace,
                name=f"bench {i}",
                topic="news",
                status="scheduled",
                scheduled_at=at,
                scheduled_local=at.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            for i, at in enumerate(run_ats)
        ),
        batch_size=2000,
    )
    CampaignContent.objects.bulk_create(
        (
            CampaignContent(campaign=c, position=0, title=f"{c.name}", subtitle="Benchmark body")
            for c in campaigns
        ),
        batch_size=2000,
    )
    ScheduledJob.objects.bulk_create(
        (
            ScheduledJob(workspace=workspace, campaign=c, run_at=at)
            for c, at in zip(campaigns, run_ats, strict=True)
        ),
        batch_size=2000,
    )
    analyze()
    return time.perf_counter() - started


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def delete_all_campaigns() -> None:
    """TRUNCATE ... CASCADE: campaigns, their contents, jobs and notifications (bench DB only)."""
    from django.db import connection

    from apps.campaigns.models import Campaign

    with connection.cursor() as cursor:
        cursor.execute(f'TRUNCATE "{Campaign._meta.db_table}" CASCADE')


def reschedule(start: datetime, step: float) -> None:
    """Give the jobs their real run_at in one statement, once the data exists, so creating
    10,000 campaigns does not eat into the lead time."""
    from django.db import connection, transaction

    from apps.campaigns.models import Campaign
    from apps.notifications.models import ScheduledJob

    jobs, campaigns = ScheduledJob._meta.db_table, Campaign._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""WITH ordered AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM "{jobs}")
                UPDATE "{jobs}" j SET run_at = %s + ordered.i * %s * interval '1 second'
                FROM ordered WHERE j.id = ordered.id""",
            [start, step],
        )
        cursor.execute(
            f"""UPDATE "{campaigns}" c SET scheduled_at = j.run_at,
                       scheduled_local = to_char(j.run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                FROM "{jobs}" j WHERE j.campaign_id = c.id"""
        )


# --- phase 1: raw claim loop ----------------------------------------------------------------
def baseline_claims(database_url: str, n: int) -> dict:
    """A bare SKIP LOCKED claim loop over a scratch table with the jobs table's shape and its
    pending/lease indexes: the fastest this PostgreSQL claims N rows in batches of 200."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_claim")
        conn.execute(
            """CREATE TABLE bench_claim (
                   id uuid PRIMARY KEY, status varchar(16) NOT NULL, run_at timestamptz NOT NULL,
                   attempt integer NOT NULL DEFAULT 0, claimed_at timestamptz,
                   lease_expires_at timestamptz, retry_at timestamptz,
                   updated_at timestamptz NOT NULL)"""
        )
        conn.execute("CREATE INDEX ON bench_claim (run_at) WHERE status = 'pending'")
        conn.execute(
            "CREATE INDEX ON bench_claim (lease_expires_at) WHERE status IN ('queued', 'running')"
        )
        conn.execute(
            """INSERT INTO bench_claim (id, status, run_at, updated_at)
               SELECT gen_random_uuid(), 'pending', now() - random() * interval '60 seconds', now()
               FROM generate_series(1, %s)""",
            [n],
        )
        conn.execute("ANALYZE bench_claim")
        claimed = 0
        started = time.perf_counter()
        while True:
            rows = conn.execute(
                """UPDATE bench_claim SET status = 'queued', attempt = attempt + 1,
                          claimed_at = now(), lease_expires_at = now() + interval '300 seconds',
                          retry_at = NULL, updated_at = now()
                   WHERE id IN (SELECT id FROM bench_claim
                                WHERE status = 'pending' AND run_at <= now()
                                  AND (retry_at IS NULL OR retry_at <= now())
                                ORDER BY run_at LIMIT %s FOR UPDATE SKIP LOCKED)
                   RETURNING id, attempt""",
                [CLAIM_BATCH],
            ).fetchall()
            if not rows:
                break
            claimed += len(rows)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_claim")
    assert claimed == n, (claimed, n)
    return {"jobs": claimed, "seconds": elapsed, "per_second": claimed / elapsed}


# --- phase 2: our claims --------------------------------------------------------------------
def our_claims(workspace, n: int, redis_url: str) -> dict:
    from django.db import connection
    from django.utils import timezone

    from apps.notifications.dispatcher import claim_due_jobs
    from apps.notifications.tasks import run_campaign_job

    now = timezone.now()
    create_seconds = create_jobs(workspace, [now - timedelta(seconds=60 * i / n) for i in range(n)])
    flush_redis(redis_url)
    connection.close()  # start from a fresh connection, like a dispatcher does
    claimed = 0
    started = time.perf_counter()
    while batch := claim_due_jobs():
        claimed += len(batch)
    elapsed = time.perf_counter() - started
    queued = redis.Redis.from_url(redis_url).llen("notifications")
    # Where the time goes: the same number of bare enqueues (no database), as the claim does
    # them (one apply_async per job, after commit).
    flush_redis(redis_url)
    enqueue_started = time.perf_counter()
    for _ in range(n):
        run_campaign_job.apply_async(args=(str(uuid.uuid4()), 1))
    enqueue_seconds = time.perf_counter() - enqueue_started
    flush_redis(redis_url)  # nothing may ever run these
    delete_all_campaigns()
    assert claimed == n, (claimed, n)
    assert queued == n, f"{queued} task messages in Redis after {n} claims"
    return {
        "jobs": claimed,
        "seconds": elapsed,
        "per_second": claimed / elapsed,
        "enqueue_only_seconds": enqueue_seconds,
        "create_seconds": create_seconds,
    }


# --- phase 3: raw send loop -------------------------------------------------------------------
def access_token(account: dict) -> str:
    import urllib3
    from google.auth.transport.urllib3 import Request
    from google.oauth2 import service_account

    from apps.integrations.firebase.client import FCM_SCOPE

    credentials = service_account.Credentials.from_service_account_info(account, scopes=[FCM_SCOPE])
    credentials.refresh(Request(urllib3.PoolManager()))
    return credentials.token


def sample_message(workspace) -> dict:
    """The exact message our worker sends for a bench campaign (built by the same code)."""
    from apps.campaigns.models import Campaign, CampaignContent
    from apps.campaigns.services import message_for

    campaign = Campaign(workspace=workspace, name="bench 0", topic="news", status="scheduled")
    content = CampaignContent(
        campaign=campaign, position=0, title="bench 0", subtitle="Benchmark body"
    )
    return message_for(campaign, content, notification_id=uuid.uuid4())


async def _raw_send_loop(url: str, token: str, template: dict, total: int, concurrency: int):
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    remaining = iter(range(total))
    failures: list[str] = []
    transport_errors: list[str] = []
    async with httpx.AsyncClient(http2=False, limits=limits, timeout=30) as client:

        async def sender() -> None:
            for _ in remaining:
                message = json.loads(json.dumps(template))
                message["apns"]["headers"]["apns-collapse-id"] = uuid.uuid4().hex
                for tries_left in (2, 1, 0):
                    # Under heavy machine load the fake occasionally drops a keep-alive
                    # connection; like any HTTP client, retry it (and count it).
                    try:
                        response = await client.post(
                            url, json={"message": message}, headers=headers
                        )
                    except httpx.TransportError as exc:
                        transport_errors.append(repr(exc))
                        if not tries_left:
                            raise
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                    break

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - started, failures, transport_errors


def baseline_sends(fake_url: str, account: dict, workspace, total: int, concurrency: int) -> dict:
    url = f"{fake_url}/v1/projects/{account['project_id']}/messages:send"
    elapsed, failures, transport_errors = asyncio.run(
        _raw_send_loop(url, access_token(account), sample_message(workspace), total, concurrency)
    )
    if failures:
        raise RuntimeError(f"{len(failures)} raw sends failed, e.g. {failures[0]}")
    received = [m["received_at"] for m in fake_messages(fake_url)]
    httpx.delete(f"{fake_url}/_fake/messages", timeout=30).raise_for_status()
    span = max(received) - min(received)
    return {
        "sends": len(received),
        "seconds": elapsed,
        "per_second": (len(received) - 1) / span,  # same definition as the real run
        "client_per_second": total / elapsed,
        "transport_errors": len(transport_errors),
    }


def fake_messages(fake_url: str) -> list[dict]:
    response = httpx.get(f"{fake_url}/_fake/messages", timeout=120)
    response.raise_for_status()
    return response.json()["messages"]


# --- phases 4 and 5: the real thing -----------------------------------------------------------
@dataclass
class WorkerSetup:
    pool: str
    concurrency: int
    workers: int
    db_reuse_max: int = 0

    def __str__(self) -> str:
        text = f"{self.workers} x celery worker --pool {self.pool} --concurrency {self.concurrency}"
        return text + (f" (CELERY_DB_REUSE_MAX={self.db_reuse_max})" if self.db_reuse_max else "")


@dataclass
class RunResult:
    label: str
    jobs: int
    sends: int = 0
    statuses: dict = field(default_factory=dict)
    duplicates: int = 0
    lateness: list[float] = field(default_factory=list)
    claim_delay: list[float] = field(default_factory=list)
    queue_wait: list[float] = field(default_factory=list)
    send_path: list[float] = field(default_factory=list)
    per_second: float = 0.0
    span: float = 0.0
    rss_100_kb: int = 0
    rss_end_kb: int = 0
    rss_peak_kb: int = 0
    rss_by_sends: dict = field(default_factory=dict)
    timed_out: bool = False
    cpu: dict = field(default_factory=dict)
    wall: float = 0.0

    @property
    def rss_growth(self) -> float:
        return (
            (self.rss_end_kb - self.rss_100_kb) / self.rss_100_kb if self.rss_100_kb else math.nan
        )


def real_run(
    label: str,
    *,
    workspace,
    n: int,
    window: float,
    lead: float,
    setup: WorkerSetup,
    processes: Processes,
    env: dict[str, str],
    fake_url: str,
    fake_pid: int,
    redis_url: str,
    timeout: float,
) -> RunResult:
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from apps.notifications.models import Notification, ScheduledJob

    delete_all_campaigns()
    flush_redis(redis_url)
    httpx.delete(f"{fake_url}/_fake/messages", timeout=30).raise_for_status()
    result = RunResult(label=label, jobs=n)

    workers = []
    for i in range(setup.workers):
        worker_args = [
            "worker",
            "--queues",
            "notifications,default",
            "--pool",
            setup.pool,
            "--concurrency",
            str(setup.concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"bench-{label}-{i}-{os.getpid()}@%h",
        ]
        if setup.db_reuse_max:
            # What-if: Celery's Django fixup closes every DB connection before and after each
            # task unless CELERY_DB_REUSE_MAX is set (celery/fixups/django.py); the project
            # does not set it, so this runs the same worker with it set.
            argv = [
                PYTHON,
                "-c",
                "import sys; from config.celery import app; "
                f"app.conf.CELERY_DB_REUSE_MAX = {setup.db_reuse_max}; "
                "app.worker_main(sys.argv[1:])",
                *worker_args,
            ]
        else:
            argv = [PYTHON, "-m", "celery", "-A", "config", *worker_args]
        workers.append(processes.start(f"{label}-worker-{i}", argv, env))
    for worker in workers:
        processes.wait_for_log(worker, "ready.")
    dispatcher = processes.start(f"{label}-dispatcher", [PYTHON, "manage.py", "dispatch"], env)
    processes.wait_for_log(dispatcher, "dispatcher_started")

    # Placeholder times a day ahead; the real ones are set in one statement below.
    placeholder = timezone.now() + timedelta(days=1)
    create_jobs(workspace, [placeholder] * n)
    start = timezone.now() + timedelta(seconds=lead)
    reschedule(start, window / n)
    log(f"{label}: {n} jobs due from {start:%H:%M:%S} over {window:g} s; {setup}")

    def groups() -> dict[str, list[int]]:
        return {
            "workers": [pid for w in workers for pid in _tree(w.pid)],
            "dispatcher": [dispatcher.pid],
            "fake FCM": _tree(fake_pid),
            "postgres": _by_name("postgres"),
            "redis": _by_name("redis-server"),
            "bench (this script)": [os.getpid()],
        }

    cpu_before, machine_before = cpu_snapshot(groups()), machine_busy_seconds()
    wall_started = time.monotonic()
    sent_q = Notification.objects.filter(status="sent")
    final = ("completed", "failed", "skipped")
    deadline = time.monotonic() + lead + window + timeout
    while True:
        time.sleep(0.2)
        done = ScheduledJob.objects.filter(status__in=final).count()
        rss = sum(tree_rss_kb(w.pid) for w in workers)
        result.rss_peak_kb = max(result.rss_peak_kb, rss)
        sent = sent_q.count()
        if not result.rss_100_kb and sent >= 100:
            result.rss_100_kb = rss
        for milestone in (100, 500, 1000, 2000, 5000):
            if sent >= milestone and milestone not in result.rss_by_sends:
                result.rss_by_sends[milestone] = rss
        if done >= n:
            break
        if time.monotonic() > deadline:
            result.timed_out = True
            log(f"{label}: timed out with {done}/{n} jobs finished")
            break
        if any(w.poll() is not None for w in workers) or dispatcher.poll() is not None:
            raise RuntimeError(
                f"{label}: a worker or the dispatcher exited; see {processes.log_dir}"
            )
    result.rss_end_kb = sum(tree_rss_kb(w.pid) for w in workers)
    result.rss_by_sends[sent_q.count()] = result.rss_end_kb
    result.cpu = cpu_used(cpu_before, cpu_snapshot(groups()))
    # What the rest of the machine (anything this bench did not start) took meanwhile.
    result.cpu["other processes"] = max(
        0.0, machine_busy_seconds() - machine_before - sum(result.cpu.values())
    )
    result.wall = time.monotonic() - wall_started
    processes.stop(dispatcher)
    for worker in workers:
        processes.stop(worker)

    result.statuses = dict(
        ScheduledJob.objects.values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    rows = {
        pk.hex: (
            run_at.timestamp(),
            claimed.timestamp() if claimed else None,
            started.timestamp() if started else None,
        )
        for pk, run_at, claimed, started in Notification.objects.values_list(
            "pk", "job__run_at", "job__claimed_at", "job__started_at"
        )
    }
    connection.close()
    messages = fake_messages(fake_url)
    seen: set[str] = set()
    received_times = []
    for message in messages:
        key = message["message"]["apns"]["headers"]["apns-collapse-id"]
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        run_at, claimed, started = rows[key]
        received = message["received_at"]
        received_times.append(received)
        result.lateness.append(received - run_at)
        if claimed and started:
            result.claim_delay.append(claimed - run_at)
            result.queue_wait.append(started - claimed)
            result.send_path.append(received - started)
    result.sends = len(received_times)
    if len(received_times) > 1:
        result.span = max(received_times) - min(received_times)
        result.per_second = (len(received_times) - 1) / result.span
    return result


# --- report -------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_run(result: RunResult) -> None:
    def dist(values: list[float]) -> str:
        if not values:
            return "n/a"
        return (
            f"p50 {percentile(values, 50):7.3f}  p99 {percentile(values, 99):7.3f}  "
            f"max {max(values):7.3f}"
        )

    print(
        f"\n  {result.label}: {result.sends}/{result.jobs} sent in {result.span:.1f} s, "
        f"job statuses {result.statuses}, duplicate sends {result.duplicates}"
        f"{', TIMED OUT' if result.timed_out else ''}"
    )
    print(f"    lateness (received - run_at) s  {dist(result.lateness)}")
    print(f"    - claim delay (claimed - run_at) {dist(result.claim_delay)}")
    print(f"    - queue wait (started - claimed) {dist(result.queue_wait)}")
    print(f"    - send path (received - started) {dist(result.send_path)}")
    print(
        f"    worker RSS: after 100 sends {result.rss_100_kb / 1024:.1f} MiB, at the end "
        f"{result.rss_end_kb / 1024:.1f} MiB (peak {result.rss_peak_kb / 1024:.1f} MiB)"
    )
    curve = ", ".join(f"{k}: {v / 1024:.0f}" for k, v in sorted(result.rss_by_sends.items()))
    print(f"    worker RSS (MiB) by sends: {curve}")
    cores = os.cpu_count() or 1
    busy = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.cpu.items())
    print(
        f"    CPU seconds over {result.wall:.1f} s wall ({cores} cores = "
        f"{cores * result.wall:.0f} CPU-s): {busy}; total "
        f"{sum(result.cpu.values()):.1f}"
    )
    if result.sends:
        per_job = {name: 1000 * seconds / result.sends for name, seconds in result.cpu.items()}
        print("    CPU ms per send: " + ", ".join(f"{k} {v:.1f}" for k, v in per_job.items()))


def summary(claims_raw, claims_ours, sends_raw, spread: RunResult, burst: RunResult | None) -> bool:
    rows = []
    p99 = percentile(spread.lateness, 99)
    rows.append(("lateness p50 (s), spread", f"{percentile(spread.lateness, 50):.3f}", "", ""))
    rows.append(
        (
            "lateness p99 (s), spread",
            f"{p99:.3f}",
            f"<= {TARGET_P99_LATENESS:g}",
            verdict(p99 <= TARGET_P99_LATENESS and not spread.timed_out),
        )
    )
    rows.append(
        ("lateness max (s), spread", f"{max(spread.lateness, default=math.nan):.3f}", "", "")
    )
    rows.append(("raw send loop (sends/s)", f"{sends_raw['per_second']:.0f}", "baseline", ""))
    runs = [spread] + ([burst] if burst else [])
    for run in runs:
        ratio = run.per_second / sends_raw["per_second"]
        cap = (
            f" (capped at {run.jobs / args.window:.0f}/s by the schedule)" if run is spread else ""
        )
        rows.append((f"sends/s, {run.label}{cap}", f"{run.per_second:.0f}", "", ""))
        rows.append(
            (
                f"  ratio to raw send loop, {run.label}",
                f"{ratio:.2f}",
                f">= {TARGET_SEND_RATIO:g}",
                verdict(ratio >= TARGET_SEND_RATIO),
            )
        )
    if burst:
        rows.append(
            ("lateness p99 (s), burst (no target)", f"{percentile(burst.lateness, 99):.3f}", "", "")
        )
    rows.append(("raw claim loop (jobs/s)", f"{claims_raw['per_second']:.0f}", "baseline", ""))
    rows.append(("claim_due_jobs (claims/s)", f"{claims_ours['per_second']:.0f}", "", ""))
    claim_ratio = claims_ours["per_second"] / claims_raw["per_second"]
    rows.append(
        (
            "  ratio to raw claim loop",
            f"{claim_ratio:.2f}",
            f">= {TARGET_CLAIM_RATIO:g}",
            verdict(claim_ratio >= TARGET_CLAIM_RATIO),
        )
    )
    for run in runs:
        rows.append(
            (
                f"worker RSS after 100 / end (MiB), {run.label}",
                f"{run.rss_100_kb / 1024:.1f} / {run.rss_end_kb / 1024:.1f}",
                "",
                "",
            )
        )
        rows.append(
            (
                f"  RSS growth, {run.label}",
                f"{run.rss_growth:+.1%}",
                f"<= {TARGET_RSS_GROWTH:.0%}",
                verdict(run.rss_growth <= TARGET_RSS_GROWTH),
            )
        )
    correct = all(r.sends == r.jobs and not r.duplicates and not r.timed_out for r in runs)
    rows.append(
        ("every job sent exactly once", "yes" if correct else "NO", "yes", verdict(correct))
    )
    width = max(len(r[0]) for r in rows)
    print("\n" + "=" * (width + 40))
    print(f"{'figure':<{width}}  {'value':>14}  {'target':>10}  result")
    print("-" * (width + 40))
    for name, value, target, result in rows:
        print(f"{name:<{width}}  {value:>14}  {target:>10}  {result}")
    print("=" * (width + 40))
    return all(r[3] != "MISS" for r in rows)


# --- main ---------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per phase (10000)")
    parser.add_argument("--window", type=float, default=60.0, help="spread of run_at (s)")
    parser.add_argument("--lead", type=float, default=3.0, help="first run_at, s from now")
    parser.add_argument("--pool", default="threads", help="celery worker pool (threads)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--celery-db-reuse-max",
        type=int,
        default=0,
        metavar="N",
        help="what-if: start workers with app.conf.CELERY_DB_REUSE_MAX=N (not the project's "
        "configuration; by default Celery reconnects to the database around every task)",
    )
    parser.add_argument("--raw-sends", type=int, default=3000, help="raw send loop size")
    parser.add_argument("--raw-concurrency", type=int, default=16)
    parser.add_argument(
        "--burst-jobs",
        type=int,
        default=2000,
        help="jobs in the all-due-at-once run (2000; 0 skips it). Smaller than --jobs so a "
        "default run stays near 6 minutes: the spread run already turns into a backlog.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="extra seconds after the window before giving up",
    )
    return parser.parse_args()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    global args
    args = parse_args()
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    if not database_url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must be PostgreSQL")
    setup = WorkerSetup(args.pool, args.concurrency, args.workers, args.celery_db_reuse_max)
    log_dir = Path(tempfile.mkdtemp(prefix="pushpilot-bench-"))
    processes = Processes(log_dir)
    began = time.monotonic()
    # SIGTERM ends the run like Ctrl-C does: through `finally`, which stops the children.
    signal.signal(signal.SIGTERM, _interrupt)
    # Explicitly: a shell starting us in the background hands us SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        log(
            f"recreating {urlsplit(database_url).path.lstrip('/')} and flushing {redis_url}; "
            f"logs in {log_dir}"
        )
        recreate_database(database_url)
        flush_redis(redis_url)
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        migrate(base_env)

        port = free_port()
        fake = processes.start(
            "fake-fcm",
            [PYTHON, "-m", "apps.integrations.firebase.fake", "--port", str(port)],
            base_env,
        )
        fake_url = f"http://127.0.0.1:{port}"
        processes.wait_for_log(fake, fake_url)
        env = {**base_env, "FCM_BASE_URL": fake_url}

        setup_django()
        workspace, account = make_workspace(fake_url)

        log(f"phase 1: raw SKIP LOCKED claim loop over {args.jobs} rows")
        claims_raw = baseline_claims(database_url, args.jobs)
        log(f"  {claims_raw['per_second']:.0f} jobs/s ({claims_raw['seconds']:.2f} s)")

        log(f"phase 2: claim_due_jobs() over {args.jobs} due jobs (enqueue to Redis, no worker)")
        claims_ours = our_claims(workspace, args.jobs, redis_url)
        log(
            f"  {claims_ours['per_second']:.0f} claims/s ({claims_ours['seconds']:.2f} s, of "
            f"which ~{claims_ours['enqueue_only_seconds']:.2f} s is {args.jobs} bare "
            f"apply_async calls)"
        )

        log(
            f"phase 3: raw async httpx send loop, {args.raw_sends} sends, "
            f"{args.raw_concurrency} in flight"
        )
        sends_raw = baseline_sends(
            fake_url, account, workspace, args.raw_sends, args.raw_concurrency
        )
        log(
            f"  {sends_raw['per_second']:.0f} sends/s "
            f"({sends_raw['transport_errors']} dropped connections retried)"
        )

        common = dict(
            workspace=workspace,
            setup=setup,
            processes=processes,
            env=env,
            fake_url=fake_url,
            fake_pid=fake.pid,
            redis_url=redis_url,
            timeout=args.timeout,
        )
        log("phase 4: real run, spread schedule")
        spread = real_run("spread", n=args.jobs, window=args.window, lead=args.lead, **common)
        print_run(spread)
        burst = None
        if args.burst_jobs > 0:
            log(f"phase 5: real run, {args.burst_jobs} jobs due at once")
            burst = real_run("burst", n=args.burst_jobs, window=0.0, lead=args.lead, **common)
            print_run(burst)

        print(
            f"\ncommand: {' '.join(sys.argv)}  (DATABASE_URL={database_url} REDIS_URL={redis_url})"
        )
        print(
            f"workers: {setup}; one `manage.py dispatch` (DISPATCH_BATCH_SIZE "
            f"{CLAIM_BATCH}); {os.cpu_count()} CPUs; "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; total {time.monotonic() - began:.0f} s"
        )
        passed = summary(claims_raw, claims_ours, sends_raw, spread, burst)
        return 0 if passed else 1
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
