"""Retention while the engine sends, with real processes on PostgreSQL + Redis: a dispatcher
that enqueues a bounded retention run every half second and a Celery worker that runs
them between the sends it is handed."""

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db.models import Max, Min
from django.utils import timezone

from apps.analytics.models import AnalyticsEvent
from apps.campaigns.services import create_campaign
from apps.common.models import AuditLog, RetentionPolicy
from apps.common.testing import wait_until
from apps.notifications.models import Delivery, DeliveryStatus, Notification
from apps.notifications.testing import make_delivery, make_due_campaigns

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
EXPIRED = 45  # days: past the 32-day windows set below, inside the 90-day default


@pytest.fixture
def worker_env(fake_fcm):
    return {"FCM_BASE_URL": fake_fcm.base_url}


def old_rows(workspace, owner, n: int, days: int, tag: str):
    campaign = create_campaign(
        workspace=workspace, actor=owner, name=f"{tag} campaign", topic="news",
        contents=[{"title": "Then", "subtitle": "Old"}],
    )  # fmt: skip
    at = timezone.now() - timedelta(days=days)
    delivery = make_delivery(campaign, at, status=DeliveryStatus.COMPLETED)
    Notification.objects.bulk_create(
        Notification(created_at=at + timedelta(minutes=i), workspace=workspace,
                     campaign=campaign, delivery=delivery, title=tag, status="sent")
        for i in range(n)
    )  # fmt: skip
    AnalyticsEvent.objects.bulk_create(
        AnalyticsEvent(workspace=workspace, event_id=f"{tag}-{i}", type="opened",
                       occurred_at=at + timedelta(minutes=i))
        for i in range(n)
    )  # fmt: skip
    audit = AuditLog.objects.bulk_create(
        AuditLog(workspace=workspace, action=f"test.{tag}") for _ in range(n)
    )
    AuditLog.objects.filter(pk__in=[a.pk for a in audit]).update(created_at=at)


def counts(workspace, tag: str) -> tuple[int, int, int]:
    return (
        Notification.objects.filter(workspace=workspace, title=tag).count(),
        AnalyticsEvent.objects.filter(workspace=workspace, event_id__startswith=f"{tag}-").count(),
        AuditLog.objects.filter(workspace=workspace, action=f"test.{tag}").count(),
    )


def test_retention_runs_in_bounded_batches_while_every_delivery_is_sent_once(
    real_processes, connected_workspace, owner, fake_fcm, make_workspace
):
    RetentionPolicy.objects.create(
        workspace=connected_workspace, events_days=32, notifications_days=32, audit_days=32
    )
    other = make_workspace(owner=owner, name="Default windows")
    old_rows(connected_workspace, owner, 60, EXPIRED, "expired")
    old_rows(connected_workspace, owner, 10, 20, "recent")  # inside the short windows
    old_rows(other, owner, 10, EXPIRED, "kept")  # inside the default 90 days
    # Due over 3 seconds (the retention runs go on meanwhile), and 10 due tomorrow.
    soon = timezone.now() + timedelta(seconds=3)
    deliveries = [
        delivery
        for second in range(4)
        for delivery in make_due_campaigns(
            connected_workspace, 10, contents=2, at=soon + timedelta(seconds=second)
        )
    ]
    ids = [d.pk for d in deliveries]
    tomorrow = make_due_campaigns(connected_workspace, 10, at=soon + timedelta(days=1))

    # 4 rows a batch, 2 batches a run: 60 expired rows per table need 8 runs (4 s).
    limits = {"RETENTION_BATCH_SIZE": 4, "RETENTION_MAX_BATCHES": 2}
    worker = real_processes.worker(concurrency=2, **limits)
    real_processes.dispatcher(RETENTION_INTERVAL_SECONDS=0.5, **limits)

    done = Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.COMPLETED)
    wait_until(lambda: done.count() == 40, timeout=90, what="the due deliveries to complete")
    wait_until(lambda: counts(connected_workspace, "expired") == (0, 0, 0), timeout=60,
               what="the expired rows to go")  # fmt: skip

    sent = Counter(  # the collapse identity is the notification's id (hex)
        str(uuid.UUID(m["message"]["apns"]["headers"]["apns-collapse-id"]))
        for m in fake_fcm.messages()
    )
    made = set(
        str(pk)
        for pk in Notification.objects.filter(delivery_id__in=ids).values_list("pk", flat=True)
    )
    assert len(made) == 80 and set(sent) == made, "each due notification sent"
    assert max(sent.values()) == 1, "a notification was sent twice"
    assert counts(connected_workspace, "recent") == (10, 10, 10)
    assert counts(other, "kept") == (10, 10, 10)
    # Tomorrow's deliveries were not touched by anyone.
    assert (
        not Delivery.objects.filter(pk__in=[d.pk for d in tomorrow])
        .exclude(status=DeliveryStatus.PENDING)
        .exists()
    )
    runs = [
        json.loads(line[line.index("{") :])
        for line in worker.log_path.read_text().splitlines()
        if "retention_applied" in line
    ]
    assert len(runs) >= 8, "60 rows at 8 a run: several bounded runs"
    assert {run["batches"] for run in runs} <= {1, 2}
    # ...and they ran while the engine was sending.
    sending = Delivery.objects.filter(pk__in=ids).aggregate(Min("started_at"), Max("finished_at"))
    during = [
        run for run in runs
        if sending["started_at__min"] <= datetime.fromisoformat(run["timestamp"])
        <= sending["finished_at__max"]
    ]  # fmt: skip
    assert during, (sending, [run["timestamp"] for run in runs])
