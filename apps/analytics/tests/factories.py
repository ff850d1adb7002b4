from datetime import timedelta

from django.utils import timezone


def event(event_id, event_type="opened", at=None, **fields):
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": (at or timezone.now() - timedelta(minutes=5)).isoformat(),
        **fields,
    }
