from celery import shared_task

from apps.devices.services import registry, sync


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def sync_devices(self, workspace_id: str) -> None:
    try:
        sync.sync_workspace(workspace_id)
    except sync.RetryLater as exc:
        raise self.retry(countdown=exc.seconds) from exc


@shared_task(acks_late=True, ignore_result=True)
def remap_languages(workspace_id: str) -> None:
    registry.remap_languages(workspace_id=workspace_id)


@shared_task(acks_late=True, ignore_result=True)
def erase_workspace(workspace_id: str) -> None:
    registry.erase_workspace(workspace_id=workspace_id)
