from celery import shared_task

from apps.workspaces import services


@shared_task(
    autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5, acks_late=True
)
def send_invitation_email(invitation_id: str, token: str) -> None:
    services.send_invitation_email(invitation_id=invitation_id, token=token)
