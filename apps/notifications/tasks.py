from celery import shared_task

from apps.notifications import services


# acks_late + reject_on_worker_lost: a worker that dies mid-send leaves the message to be
# redelivered; the job's attempt number makes a stale delivery a no-op, and the lease
# reaper recovers the job long before Redis's visibility timeout would.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             soft_time_limit=240, time_limit=270)  # fmt: skip
def run_campaign_job(job_id: str, attempt: int) -> str:
    return services.run_job(job_id, attempt)
