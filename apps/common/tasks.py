from celery import shared_task

from apps.common import retention


# On the default queue (never the sending one); enqueued by the dispatcher's housekeeping
# every RETENTION_INTERVAL_SECONDS. A lost or repeated message costs nothing: a run is
# bounded, takes a lock, and the next one carries on.
@shared_task(ignore_result=True, soft_time_limit=1800, time_limit=1860)
def apply_retention() -> None:
    retention.periodic()
