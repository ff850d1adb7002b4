"""Crash tests: real Celery workers and dispatchers as processes on PostgreSQL + Redis, the
fake FCM over HTTP, and the failures production sees — kill -9, SIGSTOP, a restarted Redis,
terminated PostgreSQL connections, no worker at all for a while, a planner killed mid-plan.
Every delivery ends exactly once; only a message in flight when its worker died may reach
FCM twice, and then with the same collapse identity."""

import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign
from apps.common.models import AuditLog
from apps.common.testing import wait_until
from apps.notifications.models import Delivery, DeliveryStatus, Notification, Occurrence
from apps.notifications.testing import make_due_campaigns

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LEASE = 3


@pytest.fixture
def worker_env(fake_fcm):
    # Short leases and timeouts, so that recovery takes seconds, not minutes.
    return {
        "FCM_BASE_URL": fake_fcm.base_url,
        "JOB_LEASE_SECONDS": str(LEASE),
        "JOB_QUEUE_TIMEOUT_SECONDS": "3",
        "DISPATCH_REAP_INTERVAL": "0.5",
    }


def collapse_counts(fake_fcm) -> Counter:
    return Counter(m["message"]["apns"]["headers"]["apns-collapse-id"] for m in fake_fcm.messages())


def all_finished(count: int):
    finished = Delivery.objects.filter(
        status__in=(DeliveryStatus.COMPLETED, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
    )
    return lambda: finished.count() == count


def assert_each_sent_once(fake_fcm, allowed_twice=frozenset()):
    """Every notification is recorded sent and reached the fake; none twice, except those in
    `allowed_twice` (in flight when their worker died), and those at most twice."""
    notifications = set(Notification.objects.values_list("pk", flat=True))
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
    counts = collapse_counts(fake_fcm)
    assert set(counts) == {pk.hex for pk in notifications}
    twice = {key for key, n in counts.items() if n > 1}
    assert twice <= {pk.hex for pk in allowed_twice}, f"{len(twice)} sent twice"
    assert max(counts.values()) <= 2
    return twice


def test_a_worker_killed_mid_batch_leaves_the_rest_to_another(
    real_processes, connected_workspace, fake_fcm
):
    first = real_processes.worker()
    real_processes.dispatcher()
    fake_fcm.inject(*[{"kind": "slow", "seconds": 4}] * 20)  # in flight when it is killed
    make_due_campaigns(connected_workspace, 200, at=timezone.now() - timedelta(seconds=1))
    sending = Notification.objects.filter(status="sending")
    wait_until(sending.exists, what="a batch to be in flight")
    time.sleep(0.5)
    real_processes.kill(first)  # SIGKILL, pool included: no cleanup, no acknowledgement
    in_flight = set(sending.values_list("pk", flat=True))
    real_processes.worker()
    wait_until(all_finished(200), what="every delivery to finish")
    time.sleep(4.5)  # the killed worker's hung requests finish at the fake
    twice = assert_each_sent_once(fake_fcm, allowed_twice=in_flight)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"completed"}
    assert Delivery.objects.filter(attempts__gt=2).count() == 0
    print(f"{len(in_flight)} in flight at the kill, {len(twice)} of them reached FCM twice")


def _snapshot():
    return (
        sorted(Delivery.objects.values_list("pk", "status", "claim_token", "updated_at")),
        sorted(
            Notification.objects.values_list(
                "pk", "status", "claim_token", "fcm_message_id", "updated_at"
            )
        ),
        AuditLog.objects.count(),
    )


def test_a_stopped_worker_resumed_past_its_lease_changes_nothing(
    real_processes, connected_workspace, fake_fcm
):
    old = real_processes.worker()
    real_processes.dispatcher()
    fake_fcm.inject(*[{"kind": "slow", "seconds": 2}] * 10)
    make_due_campaigns(connected_workspace, 100, at=timezone.now() - timedelta(seconds=1))
    sending = Notification.objects.filter(status="sending")
    wait_until(sending.exists, what="a batch to be in flight")
    in_flight = set(sending.values_list("pk", flat=True))
    real_processes.signal(old, signal.SIGSTOP)
    real_processes.worker()  # takes over once the stopped worker's lease has run out
    wait_until(all_finished(100), what="the second worker to finish everything")
    before = _snapshot()
    real_processes.signal(old, signal.SIGCONT)
    time.sleep(LEASE + 3)  # it wakes, its requests finish, it tries to record and renew
    assert _snapshot() == before  # its late writes changed nothing
    assert real_processes.alive(old)
    assert_each_sent_once(fake_fcm, allowed_twice=in_flight)


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of the test's own, to stop and restart (the shared one stays up)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    class PrivateRedis:
        url = f"redis://127.0.0.1:{port}/0"
        process = None

        def start(self):
            self.process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wait_until(lambda: _answers(port), timeout=10, what="redis to start")

        def stop(self):
            self.process.kill()
            self.process.wait()

    redis = PrivateRedis()
    redis.start()
    yield redis
    if redis.process.poll() is None:
        redis.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_redis_restarted_during_a_burst_loses_nothing_and_the_api_keeps_answering(
    real_processes, private_redis, connected_workspace, fake_fcm, api, client, settings
):
    worker = real_processes.worker(REDIS_URL=private_redis.url)
    dispatcher = real_processes.dispatcher(REDIS_URL=private_redis.url)
    start = timezone.now()
    deliveries = make_due_campaigns(connected_workspace, 300, at=start)
    # Spread over 8 s: some are due while Redis is down.
    for index, delivery in enumerate(deliveries):
        delivery.run_at = delivery.due_at = start + timedelta(seconds=8 * index / 300)
    Delivery.objects.bulk_update(deliveries, ["run_at", "due_at"])
    sent = Notification.objects.filter(status="sent")
    wait_until(lambda: sent.count() >= 30, what="the burst to be under way")

    private_redis.stop()
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": private_redis.url}
    }  # this process's cache is the stopped Redis too
    errors = _cache_errors()
    assert api.get("/api/v1/campaigns").status_code == 200  # throttled, degraded, answering
    assert _cache_errors() > errors
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["details"]["checks"]["cache"] == "unavailable"
    time.sleep(4)
    private_redis.start()

    wait_until(all_finished(300), timeout=90, what="every delivery to finish")
    assert real_processes.alive(worker) and real_processes.alive(dispatcher)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"completed"}
    assert_each_sent_once(fake_fcm)
    assert Delivery.objects.filter(attempts__gt=1).count() == 0  # no attempt spent waiting


def _cache_errors() -> float:
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "cache_errors"
        for sample in metric.samples
        if sample.name == "cache_errors_total"
    )


def test_no_worker_for_longer_than_the_queue_timeout_costs_no_attempt(
    real_processes, connected_workspace, fake_fcm
):
    real_processes.dispatcher()
    make_due_campaigns(connected_workspace, 20, at=timezone.now() - timedelta(seconds=1))
    time.sleep(10)  # three queue timeouts: each claim expires and is made again
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {0}
    assert AuditLog.objects.filter(action__startswith="engine.").count() == 0  # nothing started
    real_processes.worker()
    wait_until(all_finished(20), what="the late worker to send everything")
    assert set(Delivery.objects.values_list("status", "attempts")) == {("completed", 1)}
    assert_each_sent_once(fake_fcm)


def test_postgres_connections_terminated_mid_batch(real_processes, connected_workspace, fake_fcm):
    worker = real_processes.worker()
    dispatcher = real_processes.dispatcher()
    start = timezone.now()
    deliveries = make_due_campaigns(connected_workspace, 300, at=start)
    for index, delivery in enumerate(deliveries):
        delivery.run_at = delivery.due_at = start + timedelta(seconds=4 * index / 300)
    Delivery.objects.bulk_update(deliveries, ["run_at", "due_at"])
    terminated = 0
    for _ in range(3):
        time.sleep(0.8)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            terminated += cursor.fetchone()[0]
    assert terminated >= 3
    wait_until(all_finished(300), timeout=90, what="every delivery to finish")
    assert real_processes.alive(worker) and real_processes.alive(dispatcher)  # no restart
    assert set(Delivery.objects.values_list("status", flat=True)) == {"completed"}
    assert_each_sent_once(fake_fcm)
    assert Delivery.objects.filter(attempts__gt=2).count() == 0


def test_a_daily_campaign_planned_across_a_planner_crash(
    real_processes, connected_workspace, owner, settings
):
    settings.PLAN_BATCH_SIZE = 1
    tomorrow = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    made = []
    for index in range(20):
        campaign = campaigns.create_campaign(
            workspace=connected_workspace, actor=owner, name=f"daily {index}", topic="news",
            contents=[{"title": "Good morning"}],
        )  # fmt: skip
        campaigns.schedule_campaign(
            campaign=campaign, actor=owner, scheduled_at=tomorrow, rrule="FREQ=DAILY;COUNT=30"
        )
        made.append(campaign)
    planner = {"PLAN_HORIZON_SECONDS": str(40 * 86400), "PLAN_BATCH_SIZE": "1",
               "PLAN_INTERVAL": "0", "DISPATCH_INTERVAL": "0.02"}  # fmt: skip
    first = real_processes.dispatcher(**planner)
    planned = Delivery.objects.all()
    wait_until(lambda: planned.count() >= 150, what="planning to be under way", every=0.005)
    real_processes.kill(first)
    at_the_crash = planned.count()
    assert 150 <= at_the_crash < 600
    real_processes.dispatcher(**planner)
    wait_until(lambda: planned.count() >= 600, what="the plan to be complete")
    time.sleep(1)  # and nothing more comes
    expected = [tomorrow + timedelta(days=day) for day in range(30)]
    for campaign in made:
        runs = sorted(Delivery.objects.filter(campaign=campaign).values_list("run_at", flat=True))
        assert runs == expected
        assert Occurrence.objects.filter(campaign=campaign, is_last=True).count() == 1
    print(f"{at_the_crash} of 600 deliveries planned when the planner was killed")


def test_unschedule_edit_schedule_leaves_no_delivery_of_the_old_plan(
    real_processes, connected_workspace, owner, fake_fcm
):
    real_processes.dispatcher()  # no worker yet: what it claims waits in the queue
    campaign = campaigns.create_campaign(
        workspace=connected_workspace, actor=owner, name="Launch", topic="news",
        contents=[{"title": "Old copy"}],
    )  # fmt: skip
    old_start = timezone.now() + timedelta(seconds=1.5)
    campaigns.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=old_start, rrule="FREQ=HOURLY;COUNT=3"
    )
    old_plan = set(Delivery.objects.filter(campaign=campaign).values_list("pk", flat=True))
    queued = Delivery.objects.filter(campaign=campaign, status="queued")
    wait_until(queued.exists, what="the first delivery to be claimed")
    campaigns.unschedule_campaign(campaign=campaign, actor=owner)
    new_start = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    campaigns.update_campaign(
        campaign=Campaign.objects.get(pk=campaign.pk), actor=owner,
        contents=[{"title": "New copy"}], scheduled_at=new_start, rrule="",
    )  # fmt: skip
    campaigns.schedule_campaign(campaign=Campaign.objects.get(pk=campaign.pk), actor=owner)
    real_processes.worker()  # finds the old plan's message first, then the new one
    wait_until(lambda: Campaign.objects.get(pk=campaign.pk).status == "completed",
               what="the new plan to run")  # fmt: skip
    time.sleep(1)
    deliveries = list(Delivery.objects.filter(campaign=campaign))
    assert not old_plan & {d.pk for d in deliveries}
    assert [(d.run_at, d.status) for d in deliveries] == [(new_start, "completed")]
    assert [m["message"]["notification"]["title"] for m in fake_fcm.messages()] == ["New copy"]


def test_a_delivery_whose_worker_dies_every_time_fails_with_its_reason(
    real_processes, connected_workspace, fake_fcm
):
    limits = {"JOB_MAX_ATTEMPTS": "2", "JOB_LEASE_SECONDS": "2"}
    real_processes.dispatcher(**limits)
    fake_fcm.inject(*[{"kind": "slow", "seconds": 8}] * 3)  # every attempt hangs...
    [delivery] = make_due_campaigns(
        connected_workspace, 1, at=timezone.now() - timedelta(seconds=1)
    )
    for attempt in (1, 2):
        worker = real_processes.worker(**limits)
        wait_until(
            lambda a=attempt: Delivery.objects.filter(pk=delivery.pk, status="running",
                                                      attempts=a).exists(),
            what=f"attempt {attempt} to start",
        )  # fmt: skip
        real_processes.kill(worker)  # ...and its worker dies in it
    real_processes.worker(**limits)
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == "failed",
               what="the delivery to fail")  # fmt: skip
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("GAVE_UP: 2 attempts")
    notification = Notification.objects.get(delivery=delivery)
    assert notification.status == "failed" and notification.error_code == "GAVE_UP"
    assert notification.error_message == delivery.last_error
    assert Campaign.objects.get(pk=delivery.campaign_id).status == "failed"
