"""Recompute the hourly rollups from their sources: the event log and the notifications.

    manage.py rebuild_rollups [--workspace <uuid>]

For notifications sent before rollups existed, or to repair after a manual data fix. Sent
notifications count in the hour of `sent_at`, failed ones in the hour they last changed.

Only buckets whose raw rows are all still there are rebuilt: from the workspace's retention
cutoff on (apps.common.retention.raw_complete_since; the later of the events' cutoff and
the notifications' plus a day). Older buckets are kept as they are — their raw rows are
gone, and the rollups are what keeps their counts.
Safe while apps keep reporting: on PostgreSQL the rollup table is locked (EXCLUSIVE) for
the rebuild, so a concurrent batch either committed before (and is recomputed here) or
increments after the rebuild commits; on SQLite writers are serialised anyway.
"""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import TruncHour

from apps.analytics import rollups
from apps.analytics.models import AnalyticsEvent, EventRollup
from apps.common import retention
from apps.notifications.models import Notification, NotificationStatus
from apps.workspaces.models import Workspace

CHUNK = 1000  # buckets per upsert statement


class Command(BaseCommand):
    help = "Recompute hourly analytics rollups from events and notifications."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace (id).")

    def handle(self, *args, workspace=None, **options):
        workspaces = Workspace.all_objects.all()
        if workspace:
            workspaces = workspaces.filter(pk=workspace)
            if not workspaces.exists():
                raise CommandError(f"No workspace {workspace}.")
        total = 0
        for ws in workspaces.order_by("created_at"):
            total += rebuild(ws.pk)
        self.stdout.write(f"Rebuilt {total} rollup buckets.")


def rebuild(workspace_id, since=None) -> int:
    """Recompute the workspace's buckets from `since` (default: where its raw rows are
    complete); returns how many buckets it wrote."""
    since = since or retention.raw_complete_since(workspace_id)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(EventRollup._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        EventRollup.objects.filter(workspace_id=workspace_id, bucket__gte=since).delete()
        counts: Counter = Counter()
        events = (
            AnalyticsEvent.objects.filter(workspace_id=workspace_id, occurred_at__gte=since)
            .annotate(hour=TruncHour("occurred_at"))
            .values_list("campaign_id", "content_id", "type", "hour")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for campaign_id, content_id, event_type, hour, n in events.iterator():
            counts[rollups.bucket_key(workspace_id, campaign_id, content_id, event_type, hour)] += n
        outcomes = (
            Notification.objects.filter(
                workspace_id=workspace_id,
                status__in=[NotificationStatus.SENT, NotificationStatus.FAILED],
                updated_at__gte=since,  # settled at or after `since` (sent_at <= updated_at)
            )
            .values_list("campaign_id", "content_id", "status", "sent_at", "updated_at")
            .iterator()
        )
        for campaign_id, content_id, status, sent_at, updated_at in outcomes:
            at = sent_at if status == NotificationStatus.SENT and sent_at else updated_at
            if rollups.hour_of(at) < since:
                continue  # counted in a bucket before `since`, which is kept
            counts[rollups.bucket_key(workspace_id, campaign_id, content_id, status, at)] += 1
        items = list(counts.items())
        for start in range(0, len(items), CHUNK):
            rollups.increment(dict(items[start : start + CHUNK]))
    return len(items)
