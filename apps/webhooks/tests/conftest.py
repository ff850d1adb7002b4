import json
import time
from collections import deque

import pytest

from apps.webhooks.tests.receiver import Receiver


@pytest.fixture
def webhook_settings(settings):
    """Short timeouts and retries; private addresses allowed (the receivers are local)."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_LEASE_SECONDS = 5
    settings.WEBHOOK_RETRY_SCHEDULE = [0.2, 0.2, 0.2, 0.2, 0.2]
    settings.WEBHOOK_SWEEP_SECONDS = 0
    settings.WEBHOOK_RESOLVE_OVERRIDES = {}
    return settings


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def make_receiver():
    started = []

    def _make(*script, default=200):
        receiver = Receiver(script=deque(script), default=default).start()
        started.append(receiver)
        return receiver

    yield _make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def make_endpoint(owner):
    from apps.webhooks import services

    def _make(workspace, url, event_types=("*",), **fields):
        return services.create_endpoint(
            workspace=workspace, actor=owner, url=url, event_types=list(event_types), **fields
        )

    return _make


def pump(until, timeout=20.0, what="the deliveries"):
    """Run the sweep (as the dispatcher does) until `until()` holds."""
    from apps.webhooks.services import sweep

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return
        sweep()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def verified(received, secret: str) -> dict:
    """The payload, verified with the Standard Webhooks library (raises when it fails)."""
    from standardwebhooks.webhooks import Webhook

    Webhook(secret).verify(received.body, received.headers)
    return json.loads(received.body)
