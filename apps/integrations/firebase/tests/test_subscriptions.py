"""Topic subscriptions (subscriptions.change_subscriptions) against the fake FCM over real HTTP."""

import math
import time

import pytest
from prometheus_client import REGISTRY

from apps.integrations.firebase import subscriptions
from apps.integrations.firebase.client import (
    AuthenticationFailed,
    FcmClient,
    InternalError,
    InvalidArgument,
    QuotaExceeded,
    TransportFailed,
    Unavailable,
)
from apps.integrations.firebase.fake import FakeFCM
from apps.integrations.firebase.messages import PushContent, build_message
from apps.integrations.firebase.subscriptions import MAX_BATCH_TOKENS, change_subscriptions

PROJECT = "demo-project"


def device(i: int) -> str:
    return f"fid{i:05d}:APA91b" + "y" * 24


@pytest.fixture(autouse=True)
def _rate(settings):
    # Half the fake's 3,000 per rolling second: the client's fixed windows allow up to twice
    # the rate across a window boundary, so this keeps the tests clear of the fake's 429.
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1500
    settings.FCM_IID_BASE_URL = ""


def add(account, tokens, topic="news"):
    return change_subscriptions(account, topic=topic, tokens=tokens, subscribe=True)


def remove(account, tokens, topic="news"):
    return change_subscriptions(account, topic=topic, tokens=tokens, subscribe=False)


def changes(**labels) -> float:
    return REGISTRY.get_sample_value("fcm_subscription_changes_total", labels) or 0.0


def test_batches_of_2500_tokens_take_three_calls_each_way(fake_fcm, demo_account):
    tokens = [device(i) for i in range(2500)]
    assert MAX_BATCH_TOKENS == 1000
    assert add(demo_account, tokens) == [None] * 2500
    assert fake_fcm.stats()["subscription_requests"] == 3
    assert fake_fcm.subscriptions(PROJECT) == {token: ["news"] for token in tokens}
    assert remove(demo_account, tokens) == [None] * 2500
    assert fake_fcm.stats()["subscription_requests"] == 6
    assert fake_fcm.subscriptions(PROJECT) == {}
    assert fake_fcm.token_requests == 1  # one access token for all, as sends share it


def test_per_token_errors_come_back_in_order(fake_fcm, demo_account):
    fake_fcm.unregister([device(1)])
    tokens = [device(0), "not-a-token", device(1), "has/a slash", device(2)]
    results = add(demo_account, tokens)
    assert results == [None, "INVALID_ARGUMENT", "NOT_FOUND", "INVALID_ARGUMENT", None]
    assert sorted(fake_fcm.subscriptions(PROJECT)) == [device(0), device(2)]
    assert remove(demo_account, [device(1), device(0)]) == ["NOT_FOUND", None]


def test_one_token_uses_the_v1_api_and_is_idempotent(fake_fcm, demo_account):
    before = changes(api="v1", action="add", outcome="success")
    assert add(demo_account, [device(0)]) == [None]
    assert add(demo_account, [device(0)]) == [None]  # 409 ALREADY_EXISTS: it is there
    assert changes(api="v1", action="add", outcome="success") == before + 2
    assert fake_fcm.subscriptions(PROJECT) == {device(0): ["news"]}
    assert remove(demo_account, [device(0)]) == [None]
    assert remove(demo_account, [device(0)]) == [None]  # 404, no such subscription: gone
    assert fake_fcm.subscriptions(PROJECT) == {}
    assert fake_fcm.stats()["subscription_requests"] == 4


def test_one_token_errors(fake_fcm, demo_account):
    fake_fcm.unregister([device(7)])
    assert add(demo_account, [device(7)]) == ["NOT_FOUND"]  # 404 UNREGISTERED
    assert remove(demo_account, [device(7)]) == ["NOT_FOUND"]
    assert add(demo_account, ["short-token"]) == ["INVALID_ARGUMENT"]  # 400 from the v1 API
    assert add(demo_account, ["a/b"]) == ["INVALID_ARGUMENT"]  # not a path segment: batch API
    with fake_fcm._lock:
        fake_fcm._subscriptions[PROJECT] = {device(0): {f"t{i}": 0.0 for i in range(2000)}}
    assert add(demo_account, [device(0)]) == ["TOO_MANY_TOPICS"]
    assert add(demo_account, [device(0), device(1)]) == ["TOO_MANY_TOPICS", None]


def test_the_topic_is_checked_before_any_request(fake_fcm, demo_account):
    for topic in ("bad topic", "", "news\n", "x" * 901):
        with pytest.raises(InvalidArgument):
            add(demo_account, [device(0), device(1)], topic=topic)
    assert fake_fcm.stats()["subscription_requests"] == 0 and fake_fcm.token_requests == 0
    assert add(demo_account, [device(0)], topic="/topics/news") == [None]  # prefix tolerated
    assert add(demo_account, []) == []


@pytest.mark.parametrize("tokens", [[device(0)], [device(0), device(1)]], ids=["v1", "iid"])
def test_quota_with_retry_after(fake_fcm, demo_account, tokens):
    fake_fcm.inject({"kind": "quota", "api": "subscriptions", "retry_after": 7})
    with pytest.raises(QuotaExceeded) as info:
        add(demo_account, tokens)
    assert info.value.retry_after == 7 and info.value.retryable
    assert info.value.http_status == 429


def test_the_fakes_own_rate_limit_is_quota_exceeded(settings, demo_account):
    with FakeFCM(subscription_rate=10) as limited:
        settings.FCM_BASE_URL = limited.base_url
        account = demo_account | {"token_uri": limited.token_uri}
        limited.register_account(account)
        assert add(account, [device(i) for i in range(8)]) == [None] * 8
        with pytest.raises(QuotaExceeded) as info:
            add(account, [device(i) for i in range(8, 16)])
        assert info.value.retry_after == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [({"kind": "unavailable"}, Unavailable), ({"kind": "internal"}, InternalError),
     ({"kind": "html502"}, InternalError)],
)  # fmt: skip
@pytest.mark.parametrize("tokens", [[device(0)], [device(0), device(1)]], ids=["v1", "iid"])
def test_server_errors_are_retryable(fake_fcm, demo_account, fault, error, tokens):
    fake_fcm.inject({**fault, "api": "subscriptions"})
    with pytest.raises(error) as info:
        add(demo_account, tokens)
    assert info.value.retryable and info.value.retry_after is not None
    assert fake_fcm.stats()["subscription_requests"] == 1  # the client never retries itself


def test_timeouts_and_unreachable_hosts_are_transport_failures(fake_fcm, demo_account, settings):
    settings.FCM_TIMEOUT_SECONDS = 0.3
    fake_fcm.inject({"kind": "slow", "seconds": 1.0, "api": "subscriptions"})
    with pytest.raises(TransportFailed) as info:
        add(demo_account, [device(0), device(1)])
    assert info.value.error_code == "TIMEOUT" and info.value.retryable
    settings.FCM_IID_BASE_URL = "http://127.0.0.1:9"  # the batch API goes there; nothing listens
    with pytest.raises(TransportFailed) as info:
        add(demo_account, [device(0), device(1)])
    assert info.value.error_code == "CONNECTION_ERROR"
    assert add(demo_account, [device(0)]) == [None]  # the v1 API is on FCM_BASE_URL


def test_a_401_refreshes_the_token_once(fake_fcm, demo_account):
    assert add(demo_account, [device(0), device(1)]) == [None, None]
    fake_fcm.inject({"kind": "expired_token", "api": "subscriptions"})
    assert add(demo_account, [device(2), device(3)]) == [None, None]
    assert fake_fcm.token_requests == 2
    fake_fcm.inject(*[{"kind": "expired_token", "api": "subscriptions"}] * 2)
    with pytest.raises(AuthenticationFailed):
        add(demo_account, [device(4)])
    assert fake_fcm.token_requests == 3


def test_the_iid_base_url_follows_fcm_base_url(settings):
    settings.FCM_BASE_URL = "https://fcm.googleapis.com"
    assert subscriptions._derived_iid_base() == "https://iid.googleapis.com"
    settings.FCM_BASE_URL = "http://127.0.0.1:9099/"
    assert subscriptions._derived_iid_base() == "http://127.0.0.1:9099"


def next_window() -> None:
    """Sleep to just after the next whole second (the budget's window)."""
    time.sleep(math.ceil(time.time()) - time.time() + 0.02)


def test_adds_over_the_budget_wait_for_the_next_window(fake_fcm, demo_account, settings):
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 20
    next_window()
    assert add(demo_account, [device(i) for i in range(20)]) == [None] * 20  # spends it
    left = math.ceil(time.time()) - time.time()
    started = time.monotonic()
    assert add(demo_account, [device(i) for i in range(20, 25)]) == [None] * 5
    waited = time.monotonic() - started
    assert left - 0.05 <= waited <= left + 0.75, (left, waited)
    # Removing takes nothing from the budget.
    started = time.monotonic()
    remove(demo_account, [device(i) for i in range(25)])
    assert time.monotonic() - started < 0.5


def test_a_budget_below_the_batch_size_shrinks_the_batches(fake_fcm, demo_account, settings):
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 20
    next_window()
    started = time.monotonic()
    assert add(demo_account, [device(i) for i in range(50)]) == [None] * 50
    assert fake_fcm.stats()["subscription_requests"] == 3  # 20 + 20 + 10
    assert time.monotonic() - started >= 1.5  # three windows


def test_a_failing_cache_does_not_hold_subscriptions_up(
    fake_fcm, demo_account, settings, monkeypatch
):
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(subscriptions.cache, "incr", broken)
    started = time.monotonic()
    assert add(demo_account, [device(0), device(1), device(2)]) == [None] * 3
    assert time.monotonic() - started < 0.5


def test_every_device_gets_a_condition_send_exactly_once(fake_fcm, demo_account):
    sports = [device(i) for i in range(0, 40)]
    news = [device(i) for i in range(30, 60)]
    weather = [device(i) for i in range(55, 70)]
    assert add(demo_account, sports, "sports") == [None] * 40
    assert add(demo_account, news, "news") == [None] * 30
    assert add(demo_account, weather, "weather") == [None] * 15
    assert remove(demo_account, [device(0)], "sports") == [None]
    condition = (
        "'sports' in topics && !'news' in topics || ('weather' in topics && 'news' in topics)"
    )
    message = build_message(content=PushContent(title="Hi", body="there"), condition=condition)
    name = FcmClient(demo_account).send(message)
    expected = [device(i) for i in [*range(1, 30), *range(55, 60)]]
    reach = fake_fcm.reach(PROJECT)
    assert sorted(reach) == sorted(expected)
    assert all(names == [name] for names in reach.values())
