from django.conf import settings
from django.core.management.base import BaseCommand

from apps.common.logging import get_logger
from apps.common.multiproc import start_metrics_dir
from apps.common.stopping import catch_stop_signals
from apps.notifications.dispatcher import run_forever

logger = get_logger("pushpilot.dispatcher")


class Command(BaseCommand):
    help = (
        "Run the scheduler loop: claim due deliveries fairly and hand them to the workers in "
        "batches, return abandoned ones, keep recurring plans filled. Run one or more; they "
        "never hand out a delivery twice."
    )

    def handle(self, *args, **options):
        stopping = catch_stop_signals()
        start_metrics_dir()
        logger.info("dispatcher_started", interval=settings.DISPATCH_INTERVAL_SECONDS)
        run_forever(stop=stopping)
        logger.info("dispatcher_stopped")
