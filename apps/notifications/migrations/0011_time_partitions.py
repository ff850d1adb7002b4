import django.utils.timezone
from django.db import migrations, models
from django.db.models.functions import Coalesce

from apps.common import partitions


def first_starts(apps, schema_editor):
    """Deliveries started before this migration: their notifications' earliest created_at
    (else their start), so a retry creates missing rows with the key the others have."""
    Delivery = apps.get_model("notifications", "Delivery")
    Notification = apps.get_model("notifications", "Notification")
    earliest = (
        Notification.objects.filter(delivery_id=models.OuterRef("pk"))
        .order_by("created_at")
        .values("created_at")[:1]
    )
    Delivery.objects.filter(started_at__isnull=False).update(
        first_started_at=Coalesce(models.Subquery(earliest), "started_at")
    )


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0008_send_policies_and_approvals'),
        ('notifications', '0010_cursor_pagination_indexes'),
        ('workspaces', '0003_api_keys'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='notification',
            name='notification_delivery_content',
        ),
        migrations.AddField(
            model_name='delivery',
            name='first_started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='notification',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.UniqueConstraint(fields=('delivery', 'content', 'created_at'), name='notification_delivery_content'),
        ),
        migrations.RunPython(first_starts, migrations.RunPython.noop),
        partitions.migration("notifications_notification"),
    ]
