import email.utils
import time

from apps.common.retry import backoff, retry_after_seconds


def test_retry_after_is_seconds_or_an_http_date():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(" 1.5 ") == 1.5
    in_90_s = email.utils.formatdate(time.time() + 90, usegmt=True)
    assert 85 <= retry_after_seconds(in_90_s) <= 90
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0
    assert retry_after_seconds("-5") == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_doubles_up_to_its_cap_within_its_jitter():
    assert [backoff(n, base=0.25, cap=10) for n in (1, 2, 3, 7, 50)] == [0.25, 0.5, 1, 10, 10]
    assert backoff(0, base=1, cap=10) == 1  # a zeroth attempt waits the base
    delays = [backoff(3, base=1, cap=60, jitter=(1.0, 1.5)) for _ in range(200)]
    assert all(4 <= d <= 6 for d in delays) and len(set(delays)) > 1
