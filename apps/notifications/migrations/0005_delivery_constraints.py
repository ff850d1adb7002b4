"""Scheduled jobs become deliveries of occurrences (3/3: required columns, indexes, rules)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    dependencies = [("notifications", "0004_jobs_to_deliveries")]

    operations = [
        migrations.RemoveField(model_name="delivery", name="retry_at"),
        migrations.AlterField(model_name="delivery", name="due_at", field=models.DateTimeField()),
        migrations.AlterField(
            model_name="delivery",
            name="occurrence",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="notifications.occurrence"),
        ),
        migrations.AddIndex(model_name="delivery", index=models.Index(fields=["workspace", "run_at"], name="delivery_ws_run_at")),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(condition=Q(("status", "pending")), fields=["due_at"], include=("workspace",), name="delivery_pending_due"),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(condition=Q(("status", "pending")), fields=["workspace", "due_at"], name="delivery_pending_ws_due"),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(condition=Q(("status__in", ("queued", "running"))), fields=["lease_expires_at"], name="delivery_active_lease"),
        ),
        migrations.AddIndex(model_name="delivery", index=models.Index(fields=["campaign", "status"], name="delivery_campaign_status")),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(fields=("occurrence", "slice"), name="delivery_occurrence_slice"),
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.CheckConstraint(
                condition=Q(("status__in", ["pending", "queued", "running", "completed", "failed", "cancelled", "skipped"])),
                name="delivery_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.CheckConstraint(
                condition=(Q(topic="") & ~Q(condition="")) | (~Q(topic="") & Q(condition="")),
                name="delivery_exactly_one_target",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(fields=("delivery", "content"), name="notification_delivery_content"),
        ),
    ]
