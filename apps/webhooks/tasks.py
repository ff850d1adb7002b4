from celery import shared_task

from apps.webhooks.services import delivery


# acks_late: a worker killed mid-task leaves the message to be redelivered; the endpoint's
# lease makes a duplicate start nothing, and the dispatcher's sweep re-queues an endpoint
# whose task was lost altogether.
@shared_task(acks_late=True, ignore_result=True, soft_time_limit=240, time_limit=270)
def deliver_endpoint(endpoint_id: str) -> dict[str, int]:
    return delivery.deliver_endpoint(endpoint_id)
