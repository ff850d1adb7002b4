from celery import shared_task

from apps.notifications import services


# acks_late + reject_on_worker_lost: a worker that dies mid-batch leaves the message to be
# redelivered; the claim token makes a redelivered or stale batch start nothing, and the
# lease reaper hands its deliveries to a new claim long before Redis's visibility timeout.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             soft_time_limit=240, time_limit=270)  # fmt: skip
def send_deliveries(token: str, delivery_ids: list[str]) -> dict[str, int]:
    return services.run_batch(token, delivery_ids)
