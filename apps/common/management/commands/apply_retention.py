"""Apply the retention windows to the end (README "Retention"): what the dispatcher's
periodic task does a bounded part of every RETENTION_INTERVAL_SECONDS.

    manage.py apply_retention [--workspace <uuid>] [--dry-run]

Prints, per table, the partitions dropped and the rows deleted (with --dry-run: what would
be, changing nothing). --workspace deletes only that workspace's rows and drops no
partition (a day's partition holds every workspace's rows).
"""

import uuid

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.common import partitions, retention


class Command(BaseCommand):
    help = "Delete events, notifications and audit rows older than their retention windows."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace's rows (id).")
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")

    def handle(self, *args, workspace=None, dry_run=False, **options):
        if workspace is not None:
            try:
                workspace = uuid.UUID(workspace)
            except ValueError:
                raise CommandError(f"Not a workspace id: {workspace}") from None
            if (
                not apps.get_model("workspaces", "Workspace")
                .all_objects.filter(pk=workspace)
                .exists()
            ):
                raise CommandError(f"No workspace {workspace}.")
        with retention.only_one_run(wait=True):  # after a periodic run under way, if any
            if not dry_run:
                partitions.ensure_partitions(settings.PARTITION_DAYS_AHEAD)
            reports = retention.apply(workspace_id=workspace, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for report in reports:
            dropped = ", ".join(report.dropped) or "none"
            self.stdout.write(
                f"{report.kind}: {verb} {report.deleted} rows; "
                f"{'would drop' if dry_run else 'dropped'} partitions: {dropped}"
            )
