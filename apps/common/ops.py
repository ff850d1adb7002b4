"""Liveness and readiness for orchestrators; not versioned, not authenticated.

Readiness checks the database, the cache and the broker here; apps add their own with
`add_readiness_check` (the notifications app: the scheduler's heartbeat), so this module
imports no app.
"""

import uuid
from collections.abc import Callable

from django.core.cache import cache
from django.db import connection, transaction
from django.http import JsonResponse

from apps.common.exceptions import error_response
from apps.common.logging import get_logger

logger = get_logger("pushpilot.ops")


@transaction.non_atomic_requests  # liveness must not need the database
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return what was written")
    cache.delete(key)


def _check_broker() -> None:
    from django.conf import settings

    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(
            max_retries=1,
            interval_start=0,
            interval_step=0.2,
            timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
        )


# name -> check. A check raises when its part is not ready; it may return a dict of facts
# that /readyz reports under "details" (ready or not).
CHECKS: dict[str, Callable[[], dict | None]] = {
    "database": _check_database,
    "cache": _check_cache,
    "broker": _check_broker,
}


class NotReady(Exception):
    """A check's part is reachable but not ready; `details` say how."""

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


def add_readiness_check(name: str, check: Callable[[], dict | None]) -> None:
    CHECKS[name] = check


@transaction.non_atomic_requests
def readyz(request):
    results, details, failing = {}, {}, []
    for name, check in CHECKS.items():
        try:
            facts = check()
            results[name] = "ok"
        except NotReady as exc:
            logger.warning("readiness_check_failed", check=name, error=str(exc))
            results[name], facts = "not_ready", exc.details
            failing.append(name)
        except Exception as exc:  # a readiness probe reports every failure, whatever it is
            logger.warning("readiness_check_failed", check=name, error=type(exc).__name__)
            results[name], facts = "unavailable", None
            failing.append(name)
        if facts:
            details[name] = facts
    if failing:
        message = f"Not ready: {', '.join(failing)}."
        body = {"checks": results, **({"details": details} if details else {})}
        return error_response("SERVICE_UNAVAILABLE", message, 503, body)
    return JsonResponse(
        {"status": "ok", "checks": results, **({"details": details} if details else {})}
    )
