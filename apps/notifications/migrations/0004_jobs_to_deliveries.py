"""Scheduled jobs become deliveries of occurrences (2/3: existing rows).

Each existing job becomes a delivery of a new occurrence at its run_at, with the campaign's
target; `retry_at` folds into `due_at`. Kept apart from the schema changes: PostgreSQL
refuses to ALTER a table whose rows this same transaction has just updated.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    Delivery = apps.get_model("notifications", "Delivery")
    Occurrence = apps.get_model("notifications", "Occurrence")
    for delivery in Delivery.objects.select_related("campaign").iterator():
        campaign = delivery.campaign
        occurrence, _ = Occurrence.objects.get_or_create(
            campaign_id=campaign.pk,
            at=delivery.run_at,
            defaults={
                "workspace_id": delivery.workspace_id,
                "local": delivery.run_at.isoformat(),
                # A one-off campaign's single run is the end of its plan; a recurring
                # campaign's planner marks its last instant when it next runs.
                "is_last": not campaign.rrule,
            },
        )
        Delivery.objects.filter(pk=delivery.pk).update(
            occurrence=occurrence,
            due_at=delivery.retry_at or delivery.run_at,
            topic=campaign.topic,
            condition=campaign.condition,
        )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0003_occurrences_and_deliveries")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
