from datetime import timedelta

from django.utils import timezone


def event(event_id, event_type="opened", at=None, **fields):
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": (at or timezone.now() - timedelta(minutes=5)).isoformat(),
        **fields,
    }


def record_outcome(notification, status: str, at) -> None:
    """Count one notification's outcome as the sending engine does."""
    from apps.analytics.rollups import record_notification_outcomes

    record_notification_outcomes(
        [(notification.workspace_id, notification.campaign_id, notification.content_id, status)],
        at,
    )
