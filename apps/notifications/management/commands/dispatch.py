import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.common.logging import get_logger
from apps.notifications.dispatcher import run_forever

logger = get_logger("pushpilot.dispatcher")


class Command(BaseCommand):
    help = (
        "Run the dispatcher: claim due scheduled jobs and enqueue them, every "
        "DISPATCH_INTERVAL seconds or sooner when a job is due. Run one or more; they never "
        "enqueue a job twice."
    )

    def handle(self, *args, **options):
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        logger.info("dispatcher_started", interval=settings.DISPATCH_INTERVAL_SECONDS)
        run_forever(stop=lambda: stopping)
        logger.info("dispatcher_stopped")
