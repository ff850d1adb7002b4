"""Real processes on PostgreSQL + Redis (CI runs these): a Celery worker killed -9 in the
middle of an attempt, and a task lost by the broker. The dispatcher's sweep hands the line
to another worker; the receiver gets every event, in order, accepted once each."""

import signal
import time

import pytest
from django.db import transaction

from apps.common.testing import wait_until
from apps.webhooks import services
from apps.webhooks.models import WebhookAttempt, WebhookMessage
from apps.webhooks.tests.conftest import verified

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.usefixtures("webhook_settings")]


@pytest.fixture
def worker_env():
    return {
        "WEBHOOK_TIMEOUT_SECONDS": "3",
        "WEBHOOK_LEASE_SECONDS": "4",
        "WEBHOOK_RETRY_SCHEDULE": "0.3,0.3,0.3,0.3",
        "WEBHOOK_SWEEP_SECONDS": "0.5",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "WEBHOOK_REQUIRE_HTTPS": "false",
    }


def emit_three(workspace):
    with transaction.atomic():
        for n in range(3):
            services.emit(workspace.pk, "campaign.completed", {"n": n})


def assert_each_accepted_once_in_order(receiver, secret):
    delivered = WebhookMessage.objects.filter(status="delivered")
    wait_until(lambda: delivered.count() == 3, what="the outcomes recorded")
    accepted = receiver.accepted()
    assert [verified(r, secret)["data"]["n"] for r in accepted] == [0, 1, 2]
    ids = [r.headers["webhook-id"] for r in accepted]
    assert len(set(ids)) == 3
    assert set(WebhookMessage.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_worker_killed_mid_attempt_loses_nothing(
    real_processes, workspace, make_endpoint, make_receiver
):
    # The first attempt hangs long enough for the worker to be killed while it waits.
    receiver = make_receiver(("sleep", 2.0, 503))
    issued = make_endpoint(workspace, receiver.url)
    first = real_processes.worker(concurrency=1)
    real_processes.dispatcher()
    emit_three(workspace)
    wait_until(lambda: len(receiver.all()) == 1, what="the first attempt in flight")
    real_processes.kill(first)
    assert WebhookAttempt.objects.count() == 0  # it died before recording anything
    real_processes.worker(concurrency=1)
    wait_until(lambda: len(receiver.accepted()) == 3, what="every event delivered")
    assert_each_accepted_once_in_order(receiver, issued.secret)
    requests = receiver.all()
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
    assert len(requests) == 4  # the attempt cut by the kill, then each event once


def test_a_task_lost_by_the_broker_is_requeued_by_the_dispatcher(
    real_processes, workspace, make_endpoint, make_receiver
):
    from config.celery import app

    receiver = make_receiver()
    issued = make_endpoint(workspace, receiver.url)
    emit_three(workspace)  # no worker yet: its task waits in Redis...
    app.control.purge()  # ...and is lost
    real_processes.worker(concurrency=1)
    time.sleep(1.0)
    assert receiver.all() == []  # nothing delivers it without the sweep
    real_processes.dispatcher()
    wait_until(lambda: len(receiver.accepted()) == 3, what="the sweep to deliver")
    assert_each_accepted_once_in_order(receiver, issued.secret)
    assert len(receiver.all()) == 3


def test_a_stopped_worker_cannot_deliver_concurrently_with_another(
    real_processes, workspace, make_endpoint, make_receiver
):
    """SIGSTOP a worker mid-attempt (it holds the lease, then loses it): another takes the
    line over; the stopped one, resumed, records its attempt but moves nothing."""
    receiver = make_receiver(("sleep", 1.0, 200))
    issued = make_endpoint(workspace, receiver.url)
    first = real_processes.worker(concurrency=1)
    real_processes.dispatcher()
    emit_three(workspace)
    wait_until(lambda: len(receiver.all()) == 1, what="the first attempt in flight")
    real_processes.signal(first, signal.SIGSTOP)
    real_processes.worker(concurrency=1)
    wait_until(lambda: WebhookMessage.objects.filter(status="delivered").count() == 3,
               what="the second worker to deliver the line")  # fmt: skip
    real_processes.signal(first, signal.SIGCONT)
    time.sleep(2.0)
    accepted = [verified(r, issued.secret)["data"]["n"] for r in receiver.accepted()]
    # The stopped worker's attempt was answered 200 after it stopped: event 0 may be seen
    # twice (same webhook-id), everything else once, in order.
    assert accepted[-3:] == [0, 1, 2] and accepted.count(0) <= 2
    assert accepted.count(1) == accepted.count(2) == 1
