"""Server-side subscriptions, judged by the fake FCM: what it holds is exactly what the
registry says, after registrations, moves, removals and retirements."""

import random

import pytest
from django.utils import timezone

from apps.devices import topics
from apps.devices.models import Device, DeviceStatus, TopicAudience
from apps.devices.services import sync
from apps.devices.testing import SAMPLE_ZONES
from apps.integrations.firebase.client import FcmClient
from apps.workspaces import services as workspaces

pytestmark = pytest.mark.django_db

ZONES = SAMPLE_ZONES
LANGUAGES = ["en-US", "pt-BR", "de-DE", "ja"]
WORKSPACE_LANGUAGES = ["en", "pt-BR", "de"]  # ja falls back to the default, en
PLATFORMS = ["android", "ios", "web"]


@pytest.fixture(autouse=True)
def _sync_settings(settings):
    settings.DEVICE_SYNC_COALESCE_SECONDS = 0
    # The fake allows 3,000 per rolling second; the client counts in fixed windows, which can
    # put twice its rate into one rolling second: 2,000 < 3,000, never a 429 here.
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1000


def token(n: int) -> str:
    return f"{n:08d}:APA91b{'k' * 140}"


def device(rng: random.Random, n: int) -> dict:
    return {
        "token": token(n),
        "time_zone": ZONES[n % len(ZONES)],
        "language": LANGUAGES[n % len(LANGUAGES)],
        "platform": PLATFORMS[n % len(PLATFORMS)],
        "topics": rng.sample(["news", "sports", "deals"], rng.randrange(3)),
    }


def expected_subscriptions() -> dict[str, list[str]]:
    return {
        registry_token: sorted(device.topics)
        for registry_token, device in (
            (token(int(d.token_prefix)), d)
            for d in Device.objects.filter(status=DeviceStatus.ACTIVE)
        )
    }


def held(fake, project_id) -> dict[str, list[str]]:
    return {t: sorted(names) for t, names in fake.subscriptions(project_id).items() if names}


@pytest.fixture
def project_id(demo_account):
    return demo_account["project_id"]


@pytest.fixture
def languages(connected_workspace, owner):
    workspaces.update_workspace(
        workspace=connected_workspace, actor=owner, languages=WORKSPACE_LANGUAGES
    )
    return connected_workspace


def test_a_thousand_devices_then_moves_then_a_dead_token(
    app, fake_fcm, project_id, languages, django_capture_on_commit_callbacks
):
    rng = random.Random(13)
    items = [device(rng, n) for n in range(1000)]
    with django_capture_on_commit_callbacks(execute=True):
        for start in range(0, 1000, 250):
            response = app.post(
                "/api/v1/devices/batch", {"devices": items[start : start + 250]}, format="json"
            )
            assert response.status_code == 202 and response.json()["accepted"] == 250
    assert not Device.objects.filter(needs_sync=True).exists()
    subscriptions = held(fake_fcm, project_id)
    assert subscriptions == expected_subscriptions()
    assert len(subscriptions) == 1000
    for n in (0, 3, 7):  # zone, language (ja -> the default), bucket, app topics
        topics_of = subscriptions[token(n)]
        assert topics.zone_topic(ZONES[n % 30]) in topics_of
        assert sum(t.startswith(topics.LANGUAGE_PREFIX) for t in topics_of) == 1
        assert sum(t.startswith(topics.BUCKET_PREFIX) for t in topics_of) == 1
    assert "pushpilot-lang-en" in subscriptions[token(3)]  # ja

    # 100 devices move to other zones and languages, one by one (the single-token API
    # where a group has one token) and in a batch.
    moved = [dict(items[n], time_zone=ZONES[(n + 7) % 30], language=LANGUAGES[(n + 1) % 4])
             for n in range(0, 1000, 10)]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        app.post("/api/v1/devices", moved[0], format="json")
        app.post("/api/v1/devices/batch", {"devices": moved[1:]}, format="json")
    assert held(fake_fcm, project_id) == expected_subscriptions()  # nothing stale

    # A token FCM no longer knows is retired, and leaves the counts.
    fake_fcm.unregister([token(5)])
    with django_capture_on_commit_callbacks(execute=True):
        app.post("/api/v1/devices", dict(items[5], topics=["brand-new"]), format="json")
    retired = Device.objects.get(token_prefix=f"{5:08d}")
    assert (retired.status, retired.retired_reason) == (DeviceStatus.RETIRED, "NOT_FOUND")
    assert not TopicAudience.objects.filter(topic="brand-new", devices__gt=0).exists()
    assert held(fake_fcm, project_id) == expected_subscriptions()

    # Unregistering leaves every topic, then the registry.
    with django_capture_on_commit_callbacks(execute=True):
        assert app.delete(f"/api/v1/devices/{token(8)}").status_code == 204
    assert token(8) not in held(fake_fcm, project_id)
    assert not Device.objects.filter(token_prefix=f"{8:08d}").exists()


def test_a_send_reaches_each_device_exactly_once(
    app, fake_fcm, project_id, languages, demo_account, django_capture_on_commit_callbacks
):
    rng = random.Random(14)
    items = [device(rng, n) for n in range(120)]
    with django_capture_on_commit_callbacks(execute=True):
        app.post("/api/v1/devices/batch", {"devices": items}, format="json")
    # One message per language topic: together they reach every device once.
    for language in WORKSPACE_LANGUAGES:
        FcmClient(demo_account).send(
            {"topic": topics.language_topic(language),
             "notification": {"title": "Hello", "body": language}}
        )  # fmt: skip
    reach = fake_fcm.reach(project_id)
    assert sorted(reach) == sorted(token(n) for n in range(120))
    assert all(len(messages) == 1 for messages in reach.values())


def test_changes_wait_for_a_firebase_connection(app, workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        app.post("/api/v1/devices", device(random.Random(1), 1), format="json")
    assert Device.objects.get().needs_sync  # nothing to sync with yet
    later = timezone.now() + timezone.timedelta(minutes=5)
    assert sync.requeue_waiting(now=later) == 0  # not connected: nothing to enqueue


def test_fcm_backing_off_defers_the_sync(
    app, fake_fcm, project_id, connected_workspace, django_capture_on_commit_callbacks
):
    rng = random.Random(2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        app.post("/api/v1/devices/batch", {"devices": [device(rng, n) for n in range(30)]},
                 format="json")  # fmt: skip
    assert callbacks
    # FCM asks us to wait: the sync stops, releases its devices and says when to retry.
    fake_fcm.inject({"api": "subscriptions", "kind": "quota", "retry_after": 7})
    with pytest.raises(sync.RetryLater) as deferred:
        sync.sync_workspace(connected_workspace.pk)
    assert deferred.value.seconds == 7
    assert Device.objects.filter(needs_sync=True).count() == 30
    assert not Device.objects.exclude(sync_claim=None).exists()  # claims released
    report = sync.sync_workspace(connected_workspace.pk)
    assert report.devices == 30
    assert held(fake_fcm, project_id) == expected_subscriptions()
    assert not Device.objects.filter(needs_sync=True).exists()


def test_requeue_finds_devices_left_waiting(app, fake_fcm, project_id, connected_workspace,
                                            django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        app.post("/api/v1/devices", device(random.Random(3), 1), format="json")  # task lost
    later = timezone.now() + timezone.timedelta(minutes=5)
    assert sync.requeue_waiting(now=later) == 1  # eager here: the sync runs now
    assert held(fake_fcm, project_id) == expected_subscriptions()
    assert sync.requeue_waiting(now=later) == 0
