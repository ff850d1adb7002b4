"""Notifications are created at their delivery's first start, whichever attempt makes them:
on PostgreSQL that instant is the partition key and part of the (delivery, content)
uniqueness that keeps the engine's insert exactly once."""

from django.db import connection

from apps.common import partitions
from apps.notifications.models import Delivery, Notification


def test_every_attempt_keys_the_rows_by_the_first_start(scheduled, run_until_settled, fake_fcm):
    _, delivery = scheduled(contents=2)
    fake_fcm.inject({"kind": "unavailable", "retry_after": 0})
    run_until_settled(delivery)
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.first_started_at < delivery.started_at
    rows = list(Notification.objects.filter(delivery=delivery))
    assert len(rows) == 2 and {row.created_at for row in rows} == {delivery.first_started_at}
    assert len(fake_fcm.messages()) == 2

    # What a superseded worker racing the retry would insert meets the unique constraint.
    content = rows[0].content
    Notification.objects.bulk_create(
        [Notification(created_at=delivery.first_started_at, workspace_id=delivery.workspace_id,
                      campaign_id=delivery.campaign_id, delivery=delivery, content=content,
                      title="again")],
        ignore_conflicts=True,
    )  # fmt: skip
    assert Notification.objects.filter(delivery=delivery).count() == 2

    if connection.vendor == "postgresql":  # each row in its day's partition
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT tableoid::regclass::text FROM notifications_notification "
                "WHERE delivery_id = %s",
                [delivery.pk],
            )
            day = partitions.partition_name("notifications_notification", delivery.first_started_at)
            assert cursor.fetchall() == [(day,)]


def test_a_delivery_never_started_has_no_first_start(scheduled):
    _, delivery = scheduled(contents=1)
    assert Delivery.objects.get(pk=delivery.pk).first_started_at is None
