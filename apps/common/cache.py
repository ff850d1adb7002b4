"""The Redis cache, degrading instead of failing: PostgreSQL holds all state, Redis only
speeds things up, so Redis being down must not take the API down with it.

While Redis is unreachable every read misses and every write is dropped: throttles let
requests through (their counters start again when Redis is back), dashboards are computed
afresh, ingest keys are looked up in the database. Each failure is counted in
`cache_errors_total` and logged as a warning (at most one line every few seconds per
process); /readyz reports the cache as unavailable meanwhile.
"""

import sys
import time

from django_redis.cache import RedisCache
from prometheus_client import Counter

from apps.common.logging import get_logger

cache_errors_total = Counter(
    "cache_errors_total", "Cache operations that failed and were skipped.", ["error"]
)
WARN_EVERY_SECONDS = 5.0


class _DegradedLog:
    """Stands in for django-redis's logger of ignored exceptions."""

    def __init__(self) -> None:
        self.logger = get_logger("pushpilot.cache")
        self.last_warning = 0.0

    def exception(self, *_args, **_kwargs) -> None:
        error = sys.exc_info()[1]
        cause = type(error.__cause__ or error).__name__ if error else "unknown"
        cache_errors_total.labels(cause).inc()
        if time.monotonic() - self.last_warning >= WARN_EVERY_SECONDS:
            self.last_warning = time.monotonic()
            self.logger.warning(
                "cache_unavailable",
                error=cause,
                detail="serving without the cache: throttles are not enforced meanwhile",
            )


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._ignore_exceptions = True
        self._log_ignored_exceptions = True
        self.logger = _DegradedLog()
