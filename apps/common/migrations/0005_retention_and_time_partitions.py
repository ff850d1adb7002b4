import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models

from apps.common import partitions


class Migration(migrations.Migration):

    dependencies = [
        ('common', '0004_cursor_pagination_indexes'),
        ('workspaces', '0003_api_keys'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RetentionPolicy',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('events_days', models.PositiveIntegerField(blank=True, null=True)),
                ('notifications_days', models.PositiveIntegerField(blank=True, null=True)),
                ('audit_days', models.PositiveIntegerField(blank=True, null=True)),
                ('updated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('workspace', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='retention_policy', to='workspaces.workspace')),
            ],
            options={
                'verbose_name_plural': 'retention policies',
            },
        ),
        partitions.migration("common_auditlog"),
    ]
