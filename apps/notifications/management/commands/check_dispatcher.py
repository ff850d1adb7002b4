import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from apps.notifications.models import DispatcherHeartbeat


class Command(BaseCommand):
    help = (
        "Exit 0 when a dispatcher on this host completed a round within "
        "SCHEDULER_STALE_SECONDS, else 1 (a container healthcheck for the dispatcher)."
    )

    def handle(self, *args, **options):
        host = socket.gethostname()
        try:
            last = (
                DispatcherHeartbeat.objects.filter(name__startswith=f"{host}:")
                .order_by("-beat_at")
                .values_list("beat_at", flat=True)
                .first()
            )
        except DatabaseError as exc:
            raise CommandError(f"cannot read the dispatcher heartbeats: {exc}") from exc
        if last is None:
            raise CommandError(f"no dispatcher on {host} has completed a round")
        age = (timezone.now() - last).total_seconds()
        if age > settings.SCHEDULER_STALE_SECONDS:
            raise CommandError(f"the dispatcher on {host} last completed a round {age:.0f} s ago")
        self.stdout.write(f"ok: last round {age:.1f} s ago")
