"""The windowed throttle: two counters estimate the sliding window."""

import pytest
from rest_framework.test import APIRequestFactory

from apps.common.throttling import WindowedRateThrottle


class PerTest(WindowedRateThrottle):
    scope = "per-test"
    THROTTLE_RATES = {"per-test": "10/min"}

    def __init__(self, clock):
        super().__init__()
        self.timer = clock

    def get_cache_key(self, request, view):
        return "throttle:per-test"


@pytest.fixture
def clock():
    now = [6000.0]  # the start of a window (a multiple of 60)

    def read():
        return now[0]

    read.now = now
    return read


def allowed(clock, n: int) -> int:
    request = APIRequestFactory().get("/")
    return sum(PerTest(clock).allow_request(request, None) for _ in range(n))


def test_the_limit_holds_within_a_window(clock):
    assert allowed(clock, 15) == 10
    throttle = PerTest(clock)
    assert not throttle.allow_request(APIRequestFactory().get("/"), None)
    assert 1 <= throttle.wait() <= 60


def test_the_previous_window_counts_for_what_still_overlaps(clock):
    assert allowed(clock, 10) == 10
    clock.now[0] += 60 + 30  # half way through the next window: half of the 10 still count
    assert allowed(clock, 10) == 5
    clock.now[0] += 60  # two windows on: only the last one's requests (10 counted) weigh in
    assert allowed(clock, 10) == 5
    clock.now[0] += 120
    assert allowed(clock, 20) == 10


def test_no_rate_no_limit(clock, monkeypatch):
    monkeypatch.setitem(PerTest.THROTTLE_RATES, "per-test", None)
    assert allowed(clock, 50) == 50
