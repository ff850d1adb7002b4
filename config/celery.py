"""The Celery application. Tasks live in each app's tasks.py and are thin."""

import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("pushpilot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # Only JSON crosses the broker: no pickle, nothing executable.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    timezone="UTC",
    enable_utc=True,
    # Sending has its own queue so a backlog of housekeeping never delays a notification.
    # Workers consume both queues (`-Q notifications,default`); dedicated send workers can
    # consume `notifications` alone so housekeeping never delays a send.
    task_queues=(Queue("notifications"), Queue("default")),
    task_default_queue="default",
    task_routes={"apps.notifications.tasks.send_deliveries": {"queue": "notifications"}},
    broker_connection_retry_on_startup=True,
    # Sending is at-least-once by design and made exactly-once per notification by the
    # database (one row per delivery and content, conditional on the claim token): acknowledge
    # a task only after it ran, and give the message back if the worker process dies.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One batch message at a time per worker process: a long batch never hides queued ones
    # from idle workers, and a dying worker strands at most one.
    worker_prefetch_multiplier=1,
    # The broker's visibility timeout is set in settings (CELERY_BROKER_TRANSPORT_OPTIONS).
    # A task that hangs is killed: its deliveries' lease then expires and the reaper returns
    # them for another claim.
    task_soft_time_limit=300,
    task_time_limit=330,
    # Keep Django's LOGGING (JSON lines via structlog) in workers instead of Celery's format.
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _check_database_connections(sender=None, **_):
    """What Django does around every request, around every task: a connection that errored
    or failed its health check is closed (the next query opens a fresh one). Celery's own
    fixup skips this when it reuses connections (CELERY_DB_REUSE_MAX), so without it a
    worker would keep a connection PostgreSQL had terminated and fail every task on it."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # in-process (tests): the caller owns the connection and its transaction
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_init.connect
def _start_metrics(**_):
    """The worker's own metrics directory, emptied before its pool starts."""
    from apps.common.multiproc import start_metrics_dir

    start_metrics_dir()


@signals.worker_process_shutdown.connect
def _forget_pool_process_metrics(pid=None, **_):
    """A pool process that ends no longer counts in live gauges (in-flight sends)."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
