"""Concurrent batches on PostgreSQL: real sessions, row locks and unique-index waits."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.analytics import services
from apps.analytics.models import AnalyticsEvent, EventRollup
from apps.analytics.tests.factories import event
from apps.common.testing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_overlapping_batches_count_every_event_once(workspace, make_sent_campaign):
    _, notifications = make_sent_campaign(workspace, contents=3)
    base = timezone.now() - timedelta(hours=3)
    types = ["delivered", "opened", "clicked"]

    def batch(ids):
        return [
            event(
                f"e{i}", types[i % 3], at=base + timedelta(minutes=37 * (i % 5)),
                notification_id=str(notifications[i % 3].pk),
            )
            for i in ids
        ]  # fmt: skip

    batches = [
        batch(range(0, 300)),
        batch(reversed(range(150, 450))),  # the other order: buckets are locked sorted anyway
        batch(range(0, 450, 2)),
        batch(range(100, 400)),
    ]

    def ingest(events):
        return lambda: services.ingest_events(workspace_id=workspace.pk, payload={"events": events})

    results = race(*(ingest(b) for b in batches))
    assert all(isinstance(r, services.IngestResult) for r in results), results
    assert sum(r.accepted for r in results) == 450
    assert sum(r.accepted + r.duplicates for r in results) == sum(len(b) for b in batches)
    assert AnalyticsEvent.objects.filter(workspace=workspace).count() == 450
    total = sum(EventRollup.objects.filter(workspace=workspace).values_list("count", flat=True))
    assert total == 450


def test_compaction_folds_old_shards_and_keeps_every_count(
    workspace, make_sent_campaign, monkeypatch
):
    from datetime import timedelta

    from django.db.models import Sum
    from django.utils import timezone

    from apps.analytics import rollups
    from apps.analytics.tests.factories import record_outcome

    _, (first, second) = make_sent_campaign(workspace)
    now = timezone.now()
    old, recent = now - timedelta(hours=5), now - timedelta(minutes=5)
    for shard in range(8):
        monkeypatch.setattr(rollups, "pick_shard", lambda shard=shard: shard)
        record_outcome(first, "sent", old)
        record_outcome(second, "failed", old)
        record_outcome(first, "sent", recent)

    before = sorted(
        EventRollup.objects.values_list("event_type", "bucket").annotate(n=Sum("count")).order_by()
    )
    # Shards 1-7 of the two old buckets, a few rows a round.
    assert rollups.compact(now=now, limit=3) == 14
    after = sorted(
        EventRollup.objects.values_list("event_type", "bucket").annotate(n=Sum("count")).order_by()
    )
    assert after == before
    assert EventRollup.objects.filter(bucket=rollups.hour_of(old)).count() == 2  # one row each
    assert EventRollup.objects.filter(bucket=rollups.hour_of(recent)).count() == 8  # still hot
    assert rollups.compact(now=now) == 0
