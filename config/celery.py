"""The Celery application. Tasks live in each app's tasks.py and are thin."""

import os

from celery import Celery
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
    task_routes={"apps.notifications.tasks.run_campaign_job": {"queue": "notifications"}},
    broker_connection_retry_on_startup=True,
    # Sending is at-least-once by design and made exactly-once per notification by the
    # database (one row per job and content, conditional on the job's attempt): acknowledge
    # a task only after it ran, and give the message back if the worker process dies.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message at a time per worker process: a long send never hides queued jobs from
    # idle workers, and a dying worker strands at most one.
    worker_prefetch_multiplier=1,
    # The broker's visibility timeout is set in settings (CELERY_BROKER_TRANSPORT_OPTIONS).
    # A task that hangs is killed: the job's lease then expires and the reaper retries it.
    task_soft_time_limit=300,
    task_time_limit=330,
    # Keep Django's LOGGING (JSON lines via structlog) in workers instead of Celery's format.
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks()
