"""Delete every expired Idempotency-Key record, in bounded batches (the dispatcher sweeps one
batch per round of housekeeping; this empties the backlog at once, e.g. from cron)."""

from django.core.management.base import BaseCommand

from apps.common import idempotency


class Command(BaseCommand):
    help = "Delete expired Idempotency-Key records in batches."

    def handle(self, *args, **options):
        total = 0
        while deleted := idempotency.sweep():
            total += deleted
        self.stdout.write(f"deleted {total} expired idempotency records")
