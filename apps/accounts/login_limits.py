"""Failed sign-ins per account: after LOGIN_MAX_FAILURES wrong passwords within
LOGIN_FAILURE_WINDOW_SECONDS, the account's password sign-in answers 429 (with Retry-After)
until the window has passed — whichever addresses the attempts come from (the per-IP
throttle alone lets an attacker who spreads over addresses guess on). A successful sign-in
resets the count. Counted in the shared cache, under a hash of the email, never the email.
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled

from apps.accounts.models import normalize_email


def _keys(email: str) -> tuple[str, str]:
    digest = hashlib.sha256(normalize_email(email or "").encode()).hexdigest()
    return f"login-failures:{digest}", f"login-failures-since:{digest}"


def ensure_allowed(email: str) -> None:
    """Raise Throttled while the account has used up its failed attempts."""
    count_key, since_key = _keys(email)
    if (cache.get(count_key) or 0) < settings.LOGIN_MAX_FAILURES:
        return
    since = cache.get(since_key) or time.time()
    wait = settings.LOGIN_FAILURE_WINDOW_SECONDS - (time.time() - since)
    raise Throttled(wait=max(1, math.ceil(wait)), detail="Too many failed sign-ins.")


def record_failure(email: str) -> None:
    count_key, since_key = _keys(email)
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    cache.add(since_key, time.time(), window)
    cache.add(count_key, 0, window)
    try:
        cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, window)


def clear(email: str) -> None:
    cache.delete_many(list(_keys(email)))
