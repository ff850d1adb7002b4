"""The scheduler's part in /readyz: how long ago a dispatcher last completed a round."""

from django.conf import settings
from django.utils import timezone

from apps.common.ops import NotReady
from apps.notifications.selectors import last_heartbeat


def check_scheduler() -> dict:
    last = last_heartbeat()
    if last is None:
        raise NotReady("no dispatcher has run", {"last_round_seconds_ago": None})
    age = round((timezone.now() - last).total_seconds(), 1)
    facts = {"last_round_seconds_ago": age, "stale_after_seconds": settings.SCHEDULER_STALE_SECONDS}
    if age > settings.SCHEDULER_STALE_SECONDS:
        raise NotReady(f"the scheduler last ran {age:.0f} s ago", facts)
    return facts
