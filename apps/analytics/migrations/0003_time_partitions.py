from django.db import migrations, models

from apps.common import partitions


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0002_rollup_shards'),
        ('workspaces', '0003_api_keys'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='analyticsevent',
            name='event_ws_client_id',
        ),
        migrations.AddConstraint(
            model_name='analyticsevent',
            constraint=models.UniqueConstraint(fields=('workspace', 'occurred_at', 'event_id'), name='event_ws_occurred_client_id'),
        ),
        partitions.migration("analytics_analyticsevent"),
    ]
