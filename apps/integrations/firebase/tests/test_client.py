"""The FCM client against the fake FCM over real HTTP."""

import datetime as dt

import pytest
from prometheus_client import REGISTRY

from apps.integrations.firebase.client import (
    ERROR_CLASSES,
    FcmClient,
    FcmError,
    access_tokens,
    reset_http_client,
)
from apps.integrations.firebase.fake import make_demo_service_account
from apps.integrations.firebase.messages import PushContent, build_message
from apps.integrations.firebase.validation import MessageInvalid


def hello(topic="news") -> dict:
    return build_message(content=PushContent(title="Hello", body="World"), topic=topic)


def test_one_token_serves_many_sends(fake_fcm, demo_account):
    client = FcmClient(demo_account)
    names = [client.send(hello()) for _ in range(5)]
    assert len(set(names)) == 5 and all(
        n.startswith("projects/demo-project/messages/") for n in names
    )
    assert fake_fcm.token_requests == 1 and fake_fcm.send_requests == 5
    assert [m["message"]["topic"] for m in fake_fcm.messages("demo-project")] == ["news"] * 5
    # Another client object for the same account shares the process's token.
    FcmClient(demo_account).send(hello())
    assert fake_fcm.token_requests == 1


def test_token_is_refreshed_before_it_expires(fake_fcm, demo_account):
    client = FcmClient(demo_account)
    client.send(hello())
    credentials = access_tokens.credentials(demo_account)
    # Two minutes left: inside google-auth's refresh margin, so the next send refreshes first.
    credentials.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=2)
    client.send(hello())
    assert fake_fcm.token_requests == 2 and fake_fcm.send_requests == 2


def test_a_401_refreshes_the_token_once_and_retries(fake_fcm, demo_account):
    client = FcmClient(demo_account)
    client.send(hello())
    fake_fcm.inject({"kind": "expired_token"})
    client.send(hello())
    assert fake_fcm.token_requests == 2 and fake_fcm.send_requests == 3
    fake_fcm.inject({"kind": "expired_token"}, {"kind": "expired_token"})
    with pytest.raises(FcmError) as info:
        client.send(hello())
    assert info.value.error_code == "UNAUTHENTICATED" and not info.value.retryable


@pytest.mark.parametrize(
    "fault,code,status,retryable",
    [
        ({"kind": "quota"}, "QUOTA_EXCEEDED", 429, True),
        ({"kind": "unavailable"}, "UNAVAILABLE", 503, True),
        ({"kind": "internal"}, "INTERNAL", 500, True),
        ({"kind": "html502"}, "INTERNAL", 502, True),
        ({"kind": "unregistered"}, "UNREGISTERED", 404, False),
        ({"kind": "invalid_argument"}, "INVALID_ARGUMENT", 400, False),
        ({"kind": "sender_id_mismatch"}, "SENDER_ID_MISMATCH", 403, False),
        ({"kind": "third_party_auth"}, "THIRD_PARTY_AUTH_ERROR", 401, False),
    ],
)
def test_each_error_maps_to_a_typed_error(fake_fcm, demo_account, fault, code, status, retryable):
    fake_fcm.inject(fault)
    with pytest.raises(FcmError) as info:
        FcmClient(demo_account).send(hello())
    error = info.value
    assert (error.error_code, error.http_status, error.retryable) == (code, status, retryable)
    assert type(error) is ERROR_CLASSES[code]
    assert (error.retry_after is not None) == retryable
    # Nothing is retried inside the client, and a third-party auth error is not a stale token.
    assert fake_fcm.send_requests == 1 and fake_fcm.token_requests == 1
    assert fake_fcm.messages() == []


def test_retry_after_is_honoured_else_the_documented_backoff(fake_fcm, demo_account):
    client = FcmClient(demo_account)
    fake_fcm.inject({"kind": "quota", "retry_after": 7}, {"kind": "quota"},
                    {"kind": "unavailable", "retry_after": 3}, {"kind": "unavailable"},
                    {"kind": "internal"})  # fmt: skip
    delays = []
    for attempt in (1, 1, 1, 1, 4):
        with pytest.raises(FcmError) as info:
            client.send(hello(), attempt=attempt)
        delays.append(info.value.retry_after)
    assert delays[:3] == [7, 60, 3]
    assert 1 <= delays[3] <= 1.5  # first backoff step, with jitter
    assert 8 <= delays[4] <= 12  # fourth step: 8 s, with jitter


def test_timeouts_are_retryable(fake_fcm, demo_account, settings):
    settings.FCM_TIMEOUT_SECONDS = 0.3
    reset_http_client()
    fake_fcm.inject({"kind": "slow", "seconds": 1.0})
    with pytest.raises(FcmError) as info:
        FcmClient(demo_account).send(hello())
    assert info.value.error_code == "TIMEOUT" and info.value.retryable


def test_validate_only_checks_without_sending(fake_fcm, demo_account):
    name = FcmClient(demo_account).send(hello(), validate_only=True)
    assert name.startswith("projects/demo-project/messages/")
    assert fake_fcm.send_requests == 1 and fake_fcm.messages() == []


@pytest.mark.parametrize(
    "message",
    [
        {"topic": "bad topic!", "notification": {"title": "x"}},
        {
            "condition": " && ".join(f"'t{i}' in topics" for i in range(6)),
            "notification": {"title": "x"},
        },
        {"topic": "news", "notification": {"title": "x", "body": "y" * 1994}},  # 2049 bytes
        {"topic": "news", "data": {"google.sent_time": "1"}},
    ],
    ids=["bad topic", "6-topic condition", "2049-byte topic message", "reserved data key"],
)
def test_invalid_payloads_are_refused_before_any_request(fake_fcm, demo_account, message):
    with pytest.raises(MessageInvalid):
        FcmClient(demo_account).send(message)
    assert fake_fcm.send_requests == 0 and fake_fcm.token_requests == 0


def test_a_token_endpoint_refusal_is_not_retryable(fake_fcm, demo_account):
    stranger = {**demo_account, "client_email": "unknown@demo-project.iam.gserviceaccount.com"}
    with pytest.raises(FcmError) as info:
        FcmClient(stranger).send(hello())
    assert info.value.error_code == "AUTH_FAILED" and not info.value.retryable
    assert fake_fcm.send_requests == 0


def test_a_new_key_for_the_same_account_gets_its_own_token(fake_fcm, demo_account):
    FcmClient(demo_account).send(hello())
    # Same email, key id and token_uri, another key (a re-uploaded, hand-edited file).
    rekeyed = make_demo_service_account("demo-project", token_uri=fake_fcm.token_uri)
    rekeyed = {**rekeyed, "client_email": demo_account["client_email"],
               "private_key_id": demo_account["private_key_id"]}  # fmt: skip
    fake_fcm.register_account(rekeyed)  # the fake now trusts only the new key for this email
    FcmClient(rekeyed).send(hello())
    assert fake_fcm.token_requests == 2


def test_fetch_token_always_asks_the_token_endpoint(fake_fcm, demo_account):
    client = FcmClient(demo_account)
    client.fetch_token()
    client.fetch_token()
    assert fake_fcm.token_requests == 2
    client.send(hello())  # and sends reuse the fresh token
    assert fake_fcm.token_requests == 2


def test_an_unreachable_fcm_is_a_retryable_connection_error(fake_fcm, demo_account, settings):
    client = FcmClient(demo_account, base_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(FcmError) as info:
        client.send(hello())
    assert info.value.error_code == "CONNECTION_ERROR" and info.value.retryable
    assert info.value.retry_after is not None


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_outcome_and_timed(fake_fcm, demo_account):
    before = {
        "success": sample("fcm_requests_total", outcome="success"),
        "UNREGISTERED": sample("fcm_requests_total", outcome="UNREGISTERED"),
        "timed": sample("fcm_request_duration_seconds_count"),
    }
    client = FcmClient(demo_account)
    client.send(hello())
    fake_fcm.inject({"kind": "unregistered"})
    with pytest.raises(FcmError):
        client.send(hello())
    assert sample("fcm_requests_total", outcome="success") == before["success"] + 1
    assert sample("fcm_requests_total", outcome="UNREGISTERED") == before["UNREGISTERED"] + 1
    assert sample("fcm_request_duration_seconds_count") == before["timed"] + 2


def test_two_demo_accounts_of_one_project_both_work(fake_fcm, demo_account):
    second = fake_fcm.new_account("demo-project")  # a second workspace on the same laptop
    FcmClient(second).send(hello())
    FcmClient(demo_account).send(hello())
    assert fake_fcm.token_requests == 2 and len(fake_fcm.messages("demo-project")) == 2
