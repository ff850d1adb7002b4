"""A rate limit cheap at any rate: per person (`user`), per API key, and for the endpoints
that every install of an app calls (events, devices).

DRF's SimpleRateThrottle keeps each caller's full request history — a list of timestamps it
reads and writes back whole on every request: a person's 1,000 a day is a list of up to
1,000 floats through the cache twice per request, an app's key allowed 100,000 requests a
minute one of up to 100,000. This one keeps two counters per caller instead — the
current fixed window and the previous one — and estimates the sliding window from them
(the previous window's count weighted by how much of it still overlaps the last `duration`
seconds): one increment and one read, a few bytes each, whatever the rate. The estimate
assumes the previous window's requests were evenly spread; refused requests count too.
"""

import math

from rest_framework.throttling import SimpleRateThrottle


class WindowedRateThrottle(SimpleRateThrottle):
    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        current = self._count(f"{self.key}:{window}")
        if current is None:
            return True  # the cache is down: not enforced meanwhile (it says so in the logs)
        previous = self.cache.get(f"{self.key}:{window - 1}") or 0
        overlap = 1 - (self.now % self.duration) / self.duration
        self.estimate = previous * overlap + current
        return self.estimate <= self.num_requests

    def _count(self, key: str) -> int | None:
        """This request, counted in `key`'s window (created on first use)."""
        try:
            return self.cache.incr(key)
        except ValueError:  # the window's first request
            if self.cache.add(key, 1, timeout=2 * self.duration + 1):
                return 1
            return self.cache.incr(key)  # another process created it first

    def wait(self):
        """Seconds until the estimate falls back to the limit: the previous window's share
        shrinks as time passes; past the window's end only this window counts."""
        remaining_in_window = self.duration - (self.now % self.duration)
        return max(1, math.ceil(remaining_in_window))
