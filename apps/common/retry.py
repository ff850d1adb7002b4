"""When to try again: exponential backoff with jitter, and the server's Retry-After.

The FCM client, the AI provider and the dispatcher each choose their own policy (base, cap,
jitter); the arithmetic and the header's two forms live here once.
"""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff(
    attempt: int, *, base: float, cap: float, jitter: tuple[float, float] = (1.0, 1.0)
) -> float:
    """Seconds before retry number `attempt` (1-based): base·2^(attempt-1), at most `cap`,
    times a random factor in `jitter` (so that many clients do not retry in step)."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling * random.uniform(*jitter)  # noqa: S311 (jitter, not cryptography)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (RFC 9110 §10.2.3: seconds, or an HTTP date) as seconds from now,
    never negative; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
