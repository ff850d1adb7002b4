"""The scheduler's part in /readyz: how long ago a dispatcher last completed a round."""

from django.conf import settings
from django.utils import timezone

from apps.common.ops import NotReady
from apps.notifications.selectors import last_heartbeat


def check_scheduler(host: str | None = None) -> dict:
    """Raises NotReady unless a dispatcher (on `host`, if given) completed a round within
    SCHEDULER_STALE_SECONDS."""
    where = f" on {host}" if host else ""
    last = last_heartbeat(host)
    if last is None:
        raise NotReady(f"no dispatcher{where} has run", {"last_round_seconds_ago": None})
    age = round((timezone.now() - last).total_seconds(), 1)
    facts = {"last_round_seconds_ago": age, "stale_after_seconds": settings.SCHEDULER_STALE_SECONDS}
    if age > settings.SCHEDULER_STALE_SECONDS:
        raise NotReady(f"the scheduler{where} last ran {age:.0f} s ago", facts)
    return facts
