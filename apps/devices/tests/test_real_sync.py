"""The subscription sync in real processes on PostgreSQL + Redis: a Celery worker syncing
what the registry queued, and one killed (-9) in the middle of a sync, whose devices a new
worker takes over once the claim expires — nothing lost, nothing stale."""

import random

import pytest

from apps.common.testing import wait_until
from apps.devices.models import Device, DeviceStatus
from apps.devices.services import registry

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CLAIM = 3


@pytest.fixture
def worker_env(fake_fcm):
    return {
        "FCM_BASE_URL": fake_fcm.base_url,
        "DEVICE_SYNC_CLAIM_SECONDS": str(CLAIM),
        "DEVICE_SYNC_SWEEP_SECONDS": "0.5",
        "DEVICE_SYNC_COALESCE_SECONDS": "0.2",
        "FCM_SUBSCRIPTIONS_PER_SECOND": "1000",
    }


def register(workspace, n: int, seed: int) -> None:
    rng = random.Random(seed)
    zones = ["Europe/Paris", "Asia/Tokyo", "America/Chicago", "Africa/Lagos"]
    for start in range(0, n, 1000):
        registry.register_batch(workspace_id=workspace.pk, payload={"devices": [
            {"token": f"{i:08d}:APA91b{'r' * 80}", "time_zone": rng.choice(zones),
             "language": rng.choice(["en", "de", "fr"]), "platform": rng.choice(["ios", "web"]),
             "topics": rng.sample(["news", "deals"], rng.randrange(3))}
            for i in range(start, min(n, start + 1000))
        ]})  # fmt: skip


def in_sync(fake_fcm) -> bool:
    held = {t: sorted(names) for t, names in fake_fcm.subscriptions("demo-project").items()
            if names}  # fmt: skip
    wanted = {
        f"{prefix}:APA91b{'r' * 80}": sorted(topics)
        for prefix, topics in Device.objects.filter(status=DeviceStatus.ACTIVE).values_list(
            "token_prefix", "topics"
        )
    }
    return held == wanted and not Device.objects.filter(needs_sync=True).exists()


def test_a_real_worker_syncs_what_registration_queued(
    celery_worker_process, connected_workspace, fake_fcm
):
    register(connected_workspace, 2000, seed=1)
    wait_until(
        lambda: in_sync(fake_fcm), timeout=90.0, what="FCM to hold the registry's subscriptions"
    )


def test_a_worker_killed_mid_sync_loses_nothing(real_processes, connected_workspace, fake_fcm):
    # Slow FCM down, so that the worker is in the middle of its calls when it dies.
    fake_fcm.inject(*[{"api": "subscriptions", "kind": "slow", "seconds": 0.5}] * 12)
    worker = real_processes.worker()
    register(connected_workspace, 3000, seed=2)
    wait_until(
        lambda: fake_fcm.stats()["subscription_requests"] >= 3,
        timeout=90.0,
        what="the sync to start",
    )
    real_processes.kill(worker)
    assert Device.objects.filter(needs_sync=True).exists()  # it died with work left
    # A new worker and a dispatcher (whose loop re-queues devices left waiting) take over
    # once the dead worker's claim expires.
    real_processes.worker()
    real_processes.dispatcher()
    wait_until(lambda: in_sync(fake_fcm), timeout=90.0, what="the registry to be in sync again")
