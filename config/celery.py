"""The Celery application. Tasks live in each app's tasks.py and are thin."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("pushpilot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    timezone="UTC",
    enable_utc=True,
    # Sending has its own queue so a backlog of housekeeping never delays a notification.
    task_queues=(Queue("notifications"), Queue("default")),
    task_default_queue="default",
    task_routes={"apps.notifications.tasks.run_campaign_job": {"queue": "notifications"}},
    broker_connection_retry_on_startup=True,
    # Keep Django's LOGGING (JSON lines via structlog) in workers instead of Celery's format.
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks()
