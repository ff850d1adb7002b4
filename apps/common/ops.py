"""Liveness and readiness for orchestrators; not versioned, not authenticated."""

import uuid

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


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


@transaction.non_atomic_requests
def readyz(request):
    results, failing = {}, []
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a readiness probe reports every failure, whatever it is
            logger.warning("readiness_check_failed", check=name, error=type(exc).__name__)
            results[name] = "unavailable"
            failing.append(name)
    if failing:
        message = f"Not ready: {', '.join(failing)} unreachable."
        return error_response("SERVICE_UNAVAILABLE", message, 503, {"checks": results})
    return JsonResponse({"status": "ok", "checks": results})
