"""Real processes on PostgreSQL + Redis (CI runs these): a Celery worker sending a batch
through the fake FCM over HTTP, and four dispatchers racing over 1,000 due deliveries.
The crash tests are in test_crashes.py."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common.testing import wait_until
from apps.notifications.dispatcher import claim_due
from apps.notifications.models import Delivery, DeliveryStatus
from apps.notifications.testing import make_due_campaigns

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def worker_env(fake_fcm):
    return {"FCM_BASE_URL": fake_fcm.base_url}


def test_a_real_worker_sends_a_batch_through_the_fake_fcm(
    celery_worker_process, connected_workspace, fake_fcm
):
    deliveries = make_due_campaigns(
        connected_workspace, 30, contents=2, at=timezone.now() - timedelta(seconds=1)
    )
    batches = claim_due()
    assert sorted(pk for _, ids in batches for pk in ids) == sorted(str(d.pk) for d in deliveries)
    done = Delivery.objects.filter(status=DeliveryStatus.COMPLETED)
    wait_until(lambda: done.count() == 30, what="the deliveries to complete")
    assert len(fake_fcm.messages("demo-project")) == 60
    assert set(Campaign.objects.values_list("status", flat=True)) == {"completed"}


def test_four_dispatchers_claim_each_of_1000_deliveries_once(
    connected_workspace, fake_fcm, transactional_db
):
    """Eager mode: each dispatcher thread runs what it claims, so 1,000 claims = 1,000 sends."""
    deliveries = make_due_campaigns(
        connected_workspace, 1000, at=timezone.now() - timedelta(seconds=1)
    )
    claims: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def dispatcher(index: int) -> None:
        try:
            while batches := claim_due(limit=25):
                claims[index].extend(pk for _, ids in batches for pk in ids)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    claimed = [pk for batch in claims for pk in batch]
    assert len(claimed) == 1000 and len(set(claimed)) == 1000
    assert sum(1 for batch in claims if batch) >= 2, "the dispatchers did not share the work"
    assert set(claimed) == {str(d.pk) for d in deliveries}
    assert Delivery.objects.filter(status=DeliveryStatus.COMPLETED, attempts=1).count() == 1000
    assert fake_fcm.send_requests == 1000 and len(fake_fcm.messages()) == 1000
