import socket

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from apps.common.ops import NotReady
from apps.notifications.health import check_scheduler


class Command(BaseCommand):
    help = (
        "Exit 0 when a dispatcher on this host completed a round within "
        "SCHEDULER_STALE_SECONDS, else 1 (a container healthcheck for the dispatcher)."
    )

    def handle(self, *args, **options):
        try:
            facts = check_scheduler(host=socket.gethostname())
        except NotReady as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(f"cannot read the dispatcher heartbeats: {exc}") from exc
        self.stdout.write(f"ok: last round {facts['last_round_seconds_ago']} s ago")
