"""Scheduled jobs become deliveries of occurrences (1/3: the new columns, nullable).

Each existing job becomes a delivery of a new occurrence at its run_at, with the campaign's
target; `retry_at` folds into `due_at`; the old attempt counter becomes `attempts`; claim
tokens start empty (a job queued or running under the old engine has no token: its lease
expires and the reaper returns it to pending, where the new engine claims it).
"""

import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_campaign_catch_up_window_seconds"),
        ("notifications", "0002_scheduledjob_retry_at_notification"),
        ("workspaces", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Occurrence",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("at", models.DateTimeField()),
                ("local", models.CharField(help_text="The wall-clock time, with its offset.", max_length=32)),
                ("is_last", models.BooleanField(default=False)),
                ("campaign", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="occurrences", to="campaigns.campaign")),
                ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="occurrences", to="workspaces.workspace")),
            ],
            options={
                "ordering": ["at"],
                "indexes": [models.Index(condition=models.Q(("is_last", True)), fields=["campaign"], name="occurrence_last")],
                "constraints": [models.UniqueConstraint(fields=("campaign", "at"), name="occurrence_campaign_at")],
            },
        ),
        migrations.CreateModel(
            name="DispatcherHeartbeat",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("name", models.CharField(max_length=255, unique=True)),
                ("beat_at", models.DateTimeField()),
            ],
            options={"abstract": False},
        ),
        # --- the job table becomes the delivery table -----------------------------------
        migrations.RemoveIndex(model_name="scheduledjob", name="sjob_ws_run_status"),
        migrations.RemoveIndex(model_name="scheduledjob", name="sjob_pending_due"),
        migrations.RemoveIndex(model_name="scheduledjob", name="sjob_active_lease"),
        migrations.RemoveIndex(model_name="scheduledjob", name="sjob_campaign_status"),
        migrations.RemoveConstraint(model_name="scheduledjob", name="sjob_campaign_run_at"),
        migrations.RemoveConstraint(model_name="scheduledjob", name="sjob_status_valid"),
        migrations.RemoveConstraint(model_name="notification", name="notification_job_content"),
        migrations.RenameModel(old_name="ScheduledJob", new_name="Delivery"),
        migrations.AlterModelOptions(
            name="delivery", options={"ordering": ["run_at"], "verbose_name_plural": "deliveries"}
        ),
        migrations.AlterField(
            model_name="delivery",
            name="campaign",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="campaigns.campaign"),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="workspace",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="workspaces.workspace"),
        ),
        migrations.RenameField(model_name="delivery", old_name="attempt", new_name="attempts"),
        migrations.AddField(model_name="delivery", name="claim_token", field=models.UUIDField(blank=True, null=True)),
        migrations.AddField(model_name="delivery", name="slice", field=models.CharField(blank=True, default="", max_length=64)),
        migrations.AddField(model_name="delivery", name="topic", field=models.CharField(blank=True, default="", max_length=900)),
        migrations.AddField(model_name="delivery", name="condition", field=models.CharField(blank=True, default="", max_length=1000)),
        migrations.AddField(model_name="delivery", name="due_at", field=models.DateTimeField(null=True)),
        migrations.AddField(
            model_name="delivery",
            name="occurrence",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="notifications.occurrence"),
        ),
        migrations.RenameField(model_name="notification", old_name="job", new_name="delivery"),
        migrations.RemoveField(model_name="notification", name="attempt"),
        migrations.AddField(model_name="notification", name="claim_token", field=models.UUIDField(blank=True, null=True)),
    ]
