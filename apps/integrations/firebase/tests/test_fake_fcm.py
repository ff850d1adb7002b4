"""The fake FCM server itself, over real HTTP. No database.

Assertions are signed here with PyJWT directly (and once with google-auth, the library real
senders use) so that the fake is checked independently of our own client.
"""

import datetime as dt
import functools
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from apps.integrations.firebase.fake import FakeFCM, make_demo_service_account

GOOGLE_AUD = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
PROJECT = "demo-project"
OTHER = "other-project"
REPO_ROOT = Path(__file__).resolve().parents[4]


class Clock:
    """Real time plus an offset that a test can push forward."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def fake(clock):
    with FakeFCM(token_ttl=600, clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def account(fake):
    info = make_demo_service_account(PROJECT, token_uri=fake.token_uri)
    fake.register_account(info)
    return info


@pytest.fixture(scope="module")
def other_account(fake):
    info = make_demo_service_account(OTHER, token_uri=fake.token_uri)
    fake.register_account(info)
    return info


@pytest.fixture(scope="module")
def stranger():
    """A well-formed account the fake has never been shown."""
    return make_demo_service_account("stranger-project")


@pytest.fixture(scope="module")
def http(fake):
    with httpx.Client(base_url=fake.base_url, timeout=5) as client:
        yield client


@pytest.fixture(autouse=True)
def _clean(fake, clock):
    fake.reset()
    clock.offset = 0.0
    yield
    clock.offset = 0.0


@functools.cache
def _private_key(pem: str):
    # Loading (and validating) an RSA PEM costs ~30 ms; sign with a loaded key instead.
    return serialization.load_pem_private_key(pem.encode(), password=None)


def assertion(info, *, headers=None, key=None, **claims):
    now = int(time.time())
    payload = {"iss": info["client_email"], "scope": SCOPE, "aud": GOOGLE_AUD, "iat": now}
    payload["exp"] = now + 3600
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(
        payload,
        _private_key(key or info["private_key"]),
        algorithm="RS256",
        headers={"kid": info["private_key_id"]} if headers is None else headers,
    )


def grant(http, signed, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer"):
    return http.post("/token", data={"grant_type": grant_type, "assertion": signed})


@pytest.fixture
def token(http, account):
    response = grant(http, assertion(account))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def send(http, token):
    def _send(message=None, *, project=PROJECT, bearer=token, raw=None, **extra):
        body = raw if raw is not None else {"message": message, **extra}
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return http.post(f"/v1/projects/{project}/messages:send", json=body, headers=headers)

    return _send


def error_code(response):
    details = response.json()["error"].get("details", [])
    codes = [d["errorCode"] for d in details if d["@type"] == FCM_ERROR]
    return codes[0] if codes else None


# --- service accounts ---------------------------------------------------------------------------
def test_demo_service_account_is_a_complete_google_json():
    info = make_demo_service_account("acme-1", token_uri="http://x/token")
    assert info["type"] == "service_account"
    assert info["project_id"] == "acme-1"
    assert re.fullmatch(r"pushpilot-demo-[0-9a-f]{6}@acme-1\.iam\.gserviceaccount\.com",
                        info["client_email"])  # fmt: skip
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert re.fullmatch(r"[0-9a-f]{40}", info["private_key_id"])
    assert re.fullmatch(r"\d{21}", info["client_id"])
    assert info["token_uri"] == "http://x/token"
    assert info["client_x509_cert_url"].endswith(info["client_email"].replace("@", "%40"))
    assert {"auth_uri", "auth_provider_x509_cert_url", "universe_domain"} <= info.keys()
    other = make_demo_service_account("acme-1")
    assert other["private_key"] != info["private_key"]
    assert other["client_email"] != info["client_email"]  # never displaces another demo account


def test_register_account_rejects_garbage(fake):
    with pytest.raises(ValueError, match="client_email"):
        fake.register_account({"private_key": "x", "project_id": "p"})
    with pytest.raises(ValueError, match="PEM"):
        fake.register_account({"client_email": "a@b", "private_key": "nope", "project_id": "p"})


# --- token endpoint -----------------------------------------------------------------------------
def test_token_grant(http, fake, account):
    response = grant(http, assertion(account))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["access_token"].startswith("ya29.")
    assert fake.token_requests == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "OWN_TOKEN_URI"},
        {"scope": f"https://www.googleapis.com/auth/cloud-platform {SCOPE}"},
    ],
    ids=["aud-is-own-token-uri", "several-scopes"],
)
def test_token_grant_accepts_variants(http, fake, account, claims):
    if claims.get("aud") == "OWN_TOKEN_URI":
        claims = {"aud": fake.token_uri}
    assert grant(http, assertion(account, **claims)).status_code == 200


def test_token_grant_without_kid_header(http, account):
    assert grant(http, assertion(account, headers={})).status_code == 200


def test_token_grant_from_google_auth(fake, account, send):
    """google-auth, the reference sender, gets a token the fake then honours."""
    import urllib3
    from google.auth.transport.urllib3 import Request
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_info(account, scopes=[SCOPE])
    credentials.refresh(Request(urllib3.PoolManager()))
    response = send({"topic": "news"}, bearer=credentials.token)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("case", "error", "description"),
    [
        ("bad-signature", "invalid_grant", "Invalid JWT Signature."),
        ("wrong-kid", "invalid_grant", "Invalid JWT Signature."),
        ("wrong-scope", "invalid_scope", "Invalid OAuth scope"),
        ("no-scope", "invalid_scope", "Invalid OAuth scope"),
        ("wrong-aud", "invalid_grant", "Failed audience check"),
        ("expired", "invalid_grant", "short-lived"),
        ("too-long", "invalid_grant", "short-lived"),
        ("iat-in-future", "invalid_grant", "short-lived"),
        ("unknown-iss", "invalid_grant", "account not found"),
        ("hs256", "invalid_grant", "Invalid JWT Signature."),
        ("garbage", "invalid_grant", "Invalid JWT"),
    ],
)
def test_token_grant_failures(http, account, stranger, case, error, description):
    now = int(time.time())
    signed = {
        "bad-signature": lambda: assertion(account, key=stranger["private_key"]),
        "wrong-kid": lambda: assertion(account, headers={"kid": "0" * 40}),
        "wrong-scope": lambda: assertion(
            account, scope="https://www.googleapis.com/auth/cloud-platform"
        ),
        "no-scope": lambda: assertion(account, scope=None),
        "wrong-aud": lambda: assertion(account, aud="https://example.com/token"),
        "expired": lambda: assertion(account, iat=now - 4000, exp=now - 400),
        "too-long": lambda: assertion(account, exp=now + 3601),
        "iat-in-future": lambda: assertion(account, iat=now + 1000, exp=now + 1500),
        "unknown-iss": lambda: assertion(stranger),
        "hs256": lambda: jwt.encode(
            {"iss": account["client_email"], "scope": SCOPE, "aud": GOOGLE_AUD},
            "a-shared-secret-of-at-least-32-bytes!!",
            algorithm="HS256",
        ),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    response = grant(http, signed)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == error
    assert description in body["error_description"]


def test_token_grant_needs_jwt_bearer_grant_type(http, account):
    response = grant(http, assertion(account), grant_type="client_credentials")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


# --- send: auth ---------------------------------------------------------------------------------
def test_send_is_recorded(fake, send, clock):
    message = {"token": "device-1", "notification": {"title": "Hi", "body": "there"}}
    before = clock()
    response = send(message)
    assert response.status_code == 200, response.text
    name = response.json()["name"]
    match = re.fullmatch(rf"projects/{PROJECT}/messages/(0:\d{{16}}%([0-9a-f]{{8}})\2)", name)
    assert match, name
    [record] = fake.messages()
    assert record["project_id"] == PROJECT
    assert record["message"] == message
    assert record["message_id"] == match.group(1)
    assert before <= record["received_at"] <= clock()
    assert fake.messages(OTHER) == []
    assert fake.send_requests == 1


def test_message_ids_are_unique_and_messages_ordered(fake, send):
    names = {send({"topic": f"t{i}"}).json()["name"] for i in range(5)}
    assert len(names) == 5
    assert [m["message"]["topic"] for m in fake.messages(PROJECT)] == [f"t{i}" for i in range(5)]


@pytest.mark.parametrize("flag", ["validate_only", "validateOnly"])
def test_validate_only_is_not_recorded(fake, send, flag):
    response = send({"topic": "news"}, **{flag: True})
    assert response.status_code == 200
    assert response.json() == {"name": f"projects/{PROJECT}/messages/fake_message_id"}
    assert fake.messages() == []
    assert send({"topic": "a b"}, **{flag: True}).status_code == 400


def test_missing_bearer_token_is_401_without_details(send, fake):
    response = send({"topic": "news"}, bearer=None)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert "details" not in error
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert fake.messages() == []


def test_unknown_bearer_token_is_401(send):
    response = send({"topic": "news"}, bearer="ya29.made-up")
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith(
        "Request had invalid authentication credentials. Expected OAuth 2 access token"
    )


def test_expired_access_token_is_401(send, clock, fake):
    assert send({"topic": "news"}).status_code == 200
    clock.offset = 601
    response = send({"topic": "news"})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert len(fake.messages()) == 1


def test_token_of_another_project_is_403(send):
    response = send({"topic": "news"}, project=OTHER)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
    assert error_code(response) is None


def test_each_project_sees_its_own_messages(http, fake, send, other_account):
    other_token = grant(http, assertion(other_account)).json()["access_token"]
    assert send({"topic": "a"}).status_code == 200
    assert send({"topic": "b"}, project=OTHER, bearer=other_token).status_code == 200
    assert [m["message"]["topic"] for m in fake.messages(OTHER)] == ["b"]
    assert len(fake.messages()) == 2


# --- send: faults -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "status", "canonical", "code"),
    [
        ({"kind": "quota"}, 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
        ({"kind": "unavailable"}, 503, "UNAVAILABLE", "UNAVAILABLE"),
        ({"kind": "internal"}, 500, "INTERNAL", "INTERNAL"),
        ({"kind": "unregistered"}, 404, "NOT_FOUND", "UNREGISTERED"),
        ({"kind": "invalid_argument"}, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
        ({"kind": "sender_id_mismatch"}, 403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
        ({"kind": "third_party_auth"}, 401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
        ({"kind": "expired_token"}, 401, "UNAUTHENTICATED", None),
    ],
)
def test_json_faults(fake, send, http, account, fault, status, canonical, code):
    fake.inject(fault)
    response = send({"token": "device-1"})
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == status
    assert error["status"] == canonical
    assert error_code(response) == code
    if code is None:
        assert "details" not in error
    assert "Retry-After" not in response.headers
    assert fake.messages() == []
    # A fault consumes exactly one send request (expired_token also kills the token used).
    fresh = grant(http, assertion(account)).json()["access_token"]
    assert send({"token": "device-1"}, bearer=fresh).status_code == 200
    assert fake.send_requests == 2


@pytest.mark.parametrize(("kind", "status"), [("quota", 429), ("unavailable", 503)])
def test_retry_after_header(fake, send, kind, status):
    fake.inject({"kind": kind, "retry_after": 7})
    response = send({"token": "device-1"})
    assert response.status_code == status
    assert response.headers["Retry-After"] == "7"


def test_html_502(fake, send):
    fake.inject({"kind": "html502"})
    response = send({"token": "device-1"})
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_slow_fault_answers_normally_after_a_delay(fake, send):
    fake.inject({"kind": "slow", "seconds": 0.3})
    started = time.monotonic()
    response = send({"token": "device-1"})
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert len(fake.messages()) == 1


def test_faults_apply_in_order(fake, send):
    fake.inject({"kind": "unavailable"}, {"kind": "quota"})
    assert [send({"topic": "x"}).status_code for _ in range(3)] == [503, 429, 200]


def test_expired_token_fault_really_expires_the_token(fake, send, http, account):
    """A client that retries with the same token instead of refreshing is caught."""
    fake.inject({"kind": "expired_token"})
    assert send({"topic": "x"}).status_code == 401
    assert send({"topic": "x"}).status_code == 401
    fresh = grant(http, assertion(account)).json()["access_token"]
    assert send({"topic": "x"}, bearer=fresh).status_code == 200


def test_reset_forgets_faults_and_counters(fake, send):
    fake.inject({"kind": "internal"})
    send({"topic": "x"})
    fake.inject({"kind": "internal"})
    fake.reset()
    assert (fake.send_requests, fake.token_requests, fake.messages()) == (0, 0, [])
    assert send({"topic": "x"}).status_code == 200


def test_inject_rejects_unknown_faults(fake):
    with pytest.raises(ValueError):
        fake.inject({"kind": "meteor"})
    with pytest.raises(ValueError):
        fake.inject({"kind": "slow"})


# --- send: field names --------------------------------------------------------------------------
def test_camel_case_fields_are_accepted_and_recorded_in_snake_case(fake, send):
    message = {
        "topic": "news",
        "fcmOptions": {"analyticsLabel": "spring_sale"},
        "android": {
            "collapseKey": "promo",
            "priority": "HIGH",
            "ttl": "3600s",
            "fcmOptions": {"analyticsLabel": "a"},
            "notification": {"channelId": "promos", "clickAction": "OPEN", "notificationCount": 2},
        },
        "apns": {"headers": {"apns-priority": "10"}, "fcmOptions": {"analyticsLabel": "b"}},
        "webpush": {"fcmOptions": {"link": "https://example.com/sale"}},
    }
    response = send(raw={"message": message, "validateOnly": False})
    assert response.status_code == 200, response.text
    [record] = fake.messages()
    assert record["message"]["fcm_options"] == {"analytics_label": "spring_sale"}
    assert record["message"]["android"]["collapse_key"] == "promo"
    assert record["message"]["android"]["notification"]["channel_id"] == "promos"
    assert record["message"]["webpush"]["fcm_options"]["link"] == "https://example.com/sale"
    assert record["raw"] == message


def test_snake_case_fields_are_accepted(fake, send):
    message = {
        "token": "device-1",
        "data": {"order_id": "42"},
        "fcm_options": {"analytics_label": "x"},
        "android": {"collapse_key": "c", "priority": "NORMAL", "ttl": "0s"},
        "apns": {
            "headers": {"apns-priority": "5", "apns-expiration": "1900000000"},
            "payload": {"aps": {"badge": 1, "mutable-content": 1}},
        },
    }
    response = send(message, validate_only=False)
    assert response.status_code == 200, response.text
    assert fake.messages()[0]["message"] == message


@pytest.mark.parametrize(
    "message",
    [
        {"token": "d", "colour": "red"},
        {"token": "d", "android": {"priority": "HIGH", "prio": "x"}},
        {"token": "d", "fcm_options": {"analytics_label": "a"}, "fcmOptions": {}},
        {"token": "d", "data": {"n": 1}},
        {"token": 42},
    ],
    ids=["unknown-field", "unknown-nested-field", "duplicate-field", "int-data", "int-token"],
)
def test_json_layer_rejections_carry_no_fcm_error(send, message):
    response = send(message)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert error_code(response) is None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"message": {"token": "d", "data": {"k": "\\ud800"}}}'],
    ids=["not-json", "not-an-object", "lone-surrogate"],
)
def test_unparseable_body(http, token, content):
    response = http.post(
        f"/v1/projects/{PROJECT}/messages:send",
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


# --- send: validation ---------------------------------------------------------------------------
def sized(target: dict, size: int) -> dict:
    """A message with ``target`` whose compact UTF-8 JSON is exactly ``size`` bytes."""
    message = {**target, "data": {"pad": ""}}
    base = len(json.dumps(message, separators=(",", ":")).encode())
    message["data"]["pad"] = "x" * (size - base)
    assert len(json.dumps(message, separators=(",", ":")).encode()) == size
    return message


FIVE = " && ".join(f"'t{i}' in topics" for i in range(5))


@pytest.mark.parametrize(
    "message",
    [
        {"topic": "a-b_c.d~e%f"},
        {"topic": "x" * 900},
        {"condition": "'a' in topics"},
        {"condition": "'a' in topics && ('b' in topics || 'c' in topics)"},
        {"condition": "!('a' in topics) || !'b' in topics"},
        {"condition": FIVE},
        {"token": "d", "data": {"my_google": "x", "fromage": "y", "gc": "z"}},
        {"token": "d", "android": {"ttl": "2419200s"}},
        {"token": "d", "android": {"ttl": "1.5s"}},
        {"token": "d", "android": {"priority": "normal"}},  # firebase-admin's spelling
        {"token": "d", "apns": {"headers": {"apns-collapse-id": "c" * 64}}},
        {"token": "d", "fcm_options": {"analytics_label": "L" * 50}},
        sized({"topic": "news"}, 2048),
        sized({"condition": "'a' in topics"}, 2048),
        sized({"token": "d"}, 4096),
    ],
)
def test_valid_messages(send, message):
    response = send(message)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"notification": {"title": "no target"}},
        {"token": "d", "topic": "news"},
        {"topic": "news", "condition": "'a' in topics"},
        {"topic": "/topics/news"},
        {"topic": "bad topic"},
        {"topic": "news\n"},
        {"topic": "caf\u00e9"},
        {"condition": "(" * 3000 + "'a' in topics" + ")" * 3000},
        {"condition": FIVE + " && 't5' in topics"},
        {"condition": "'a' in topics &&"},
        {"condition": "('a' in topics"},
        {"condition": "'a' in topic"},
        {"condition": "a in topics"},
        {"condition": "'a' in topics & 'b' in topics"},
        {"condition": "'bad name' in topics"},
        {"token": "d", "data": {"from": "x"}},
        {"token": "d", "data": {"message_type": "x"}},
        {"token": "d", "data": {"google.c.a": "x"}},
        {"token": "d", "data": {"gcm.notification": "x"}},
        {"token": "d", "android": {"data": {"from": "x"}}},
        {"token": "d", "android": {"priority": "URGENT"}},
        {"token": "d", "android": {"ttl": "3600"}},
        {"token": "d", "android": {"ttl": "2419201s"}},
        {"token": "d", "android": {"ttl": "-1s"}},
        {"token": "d", "apns": {"headers": {"apns-priority": "7"}}},
        {"token": "d", "apns": {"headers": {"apns-priority": "high"}}},
        {"token": "d", "apns": {"headers": {"apns-expiration": "tomorrow"}}},
        {"token": "d", "apns": {"headers": {"apns-collapse-id": "c" * 65}}},
        {"token": "d", "apns": {"headers": {"apns-collapse-id": "\u00e9" * 33}}},
        {"token": "d", "fcm_options": {"analytics_label": "L" * 51}},
        {"token": "d", "fcm_options": {"analytics_label": "has space"}},
        {"token": "d", "fcm_options": {"analytics_label": ""}},
        {"token": "d", "fcm_options": {"analytics_label": "label\n"}},
        {"token": "d", "android": {"fcm_options": {"analytics_label": "a/b"}}},
        {"token": "d", "webpush": {"fcm_options": {"link": "http://example.com"}}},
        {"token": "d", "webpush": {"fcm_options": {"link": "/relative"}}},
    ],
)
def test_invalid_messages(fake, send, message):
    response = send(message)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fake.messages() == []


@pytest.mark.parametrize(
    "message",
    [
        {"token": "d", "data": {"from": "x"}},
        {"topic": "bad topic"},
        {"condition": FIVE + " && 't5' in topics"},
        {"token": "d", "android": {"ttl": "2419201s"}},
    ],
)
def test_semantic_rejections_carry_fcm_error(send, message):
    response = send(message)
    assert response.status_code == 400
    assert error_code(response) == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "message",
    [
        sized({"topic": "news"}, 2049),
        sized({"condition": "'a' in topics"}, 2049),
        sized({"token": "d"}, 4097),
    ],
    ids=["topic-2049", "condition-2049", "token-4097"],
)
def test_oversized_messages_are_plain_400(fake, send, message):
    response = send(message)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "details" not in error
    assert fake.messages() == []


def test_enum_names_are_matched_case_insensitively(fake, send):
    assert send({"token": "d", "android": {"priority": "high"}}).status_code == 200
    assert fake.messages()[-1]["message"]["android"]["priority"] == "HIGH"


def test_size_counts_utf8_bytes(send):
    message = sized({"topic": "news"}, 2048)
    message["data"]["pad"] = message["data"]["pad"][:-2] + "\u00e9"  # 2 bytes for 2 chars
    assert send(message).status_code == 200
    message["data"]["pad"] = message["data"]["pad"][:-2] + "\u00e9\u00e9"
    assert send(message).status_code == 400


# --- control endpoints --------------------------------------------------------------------------
def test_http_control_endpoints(http, fake):
    assert http.get("/healthz").status_code == 200

    info = make_demo_service_account("remote-project", token_uri=fake.token_uri)
    registered = http.post("/_fake/accounts", json=info)
    assert registered.status_code == 200
    assert registered.json() == {
        "client_email": info["client_email"],
        "project_id": "remote-project",
    }
    bearer = grant(http, assertion(info)).json()["access_token"]
    headers = {"Authorization": f"Bearer {bearer}"}

    def send(topic):
        return http.post(
            "/v1/projects/remote-project/messages:send",
            json={"message": {"topic": topic}},
            headers=headers,
        )

    assert http.post(
        "/_fake/faults", json={"faults": [{"kind": "quota", "retry_after": 3}]}
    ).json() == {"queued": 1}
    refused = send("a")
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "3")
    assert send("b").status_code == 200

    listed = http.get("/_fake/messages", params={"project_id": "remote-project"}).json()["messages"]
    assert [m["message"]["topic"] for m in listed] == ["b"]
    assert listed[0]["project_id"] == "remote-project"
    assert listed[0]["message_id"] and listed[0]["received_at"] > 0
    assert http.get("/_fake/messages", params={"project_id": "nobody"}).json() == {"messages": []}
    assert http.get("/_fake/stats").json() == {
        "token_requests": 1,
        "send_requests": 2,
        "messages": 1,
        "subscription_requests": 0,
        "subscriptions": 0,
    }

    assert http.delete("/_fake/messages").status_code == 200
    assert http.get("/_fake/stats").json() == {
        "token_requests": 0,
        "send_requests": 0,
        "messages": 0,
        "subscription_requests": 0,
        "subscriptions": 0,
    }
    assert http.get("/_fake/messages").json() == {"messages": []}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_fake/faults", {"faults": [{"kind": "meteor"}]}),
        ("/_fake/faults", {"faults": "quota"}),
        ("/_fake/accounts", {"client_email": "x@y"}),
    ],
)
def test_http_control_rejects_bad_input(http, fake, path, body):
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert fake.stats()["send_requests"] == 0


def test_unknown_paths_are_html_404(http, token):
    response = http.post(
        "/v1/projects/demo-project/messages:sendAll",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert http.get(f"/v1/projects/{PROJECT}/messages:send").status_code == 404


# --- lifecycle ----------------------------------------------------------------------------------
def test_stop_closes_the_port():
    fake = FakeFCM().start()
    url = fake.base_url
    with httpx.Client() as client:
        assert client.get(f"{url}/healthz").status_code == 200
        fake.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"{url}/healthz")
    fake.stop()  # idempotent


def test_standalone_process_and_independence():
    """``python -m`` prints its URL and serves; the package pulls in neither Django nor apps.*."""
    check = (
        "import sys, apps.integrations.firebase.fake; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.') "
        "or (m.startswith('apps.') and not m.startswith('apps.integrations.firebase.fake'))"
        " and m not in ('apps.integrations', 'apps.integrations.firebase')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stdout + result.stderr

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apps.integrations.firebase.fake",
            "--port",
            "0",
            "--token-ttl",
            "5",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url), base_url
        info = make_demo_service_account("standalone", token_uri=f"{base_url}/token")
        with httpx.Client(base_url=base_url, timeout=5) as client:
            assert client.get("/healthz").status_code == 200
            # Standalone trusts only registered accounts.
            assert grant(client, assertion(info)).status_code == 400
            assert client.post("/_fake/accounts", json=info).status_code == 200
            granted = grant(client, assertion(info)).json()
            assert granted["expires_in"] == 5
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=5) == 0
    assert process.stderr.read().count("\n") == 1  # quiet: the banner only, no request lines


def test_new_account_is_registered_and_points_here(fake, http):
    info = fake.new_account("fresh-project")
    assert info["token_uri"] == fake.token_uri
    assert grant(http, assertion(info)).status_code == 200


def test_expire_tokens(fake, send, http, account):
    assert send({"topic": "x"}).status_code == 200
    fake.expire_tokens()
    assert send({"topic": "x"}).status_code == 401
    fresh = grant(http, assertion(account)).json()["access_token"]
    assert send({"topic": "x"}, bearer=fresh).status_code == 200


# --- topic subscriptions: Instance ID batch API ----------------------------------------------
def device(i: int) -> str:
    """A plausible registration token."""
    return f"fid{i:05d}:APA91b" + "x" * 20


@pytest.fixture
def batch(http, token):
    def _batch(tokens=None, topic="/topics/news", *, add=True, bearer=token, iid_header=True,
               raw=None):  # fmt: skip
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if iid_header:
            headers["access_token_auth"] = "true"
        body = raw if raw is not None else {"to": topic, "registration_tokens": tokens}
        path = "/iid/v1:batchAdd" if add else "/iid/v1:batchRemove"
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        return http.post(path, headers=headers, **kwargs)

    return _batch


def test_batch_add_and_remove(fake, batch):
    tokens = [device(i) for i in range(3)]
    response = batch(tokens)
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [{}, {}, {}]}
    assert batch(tokens[:1], "/topics/sports").status_code == 200
    assert fake.subscriptions(PROJECT) == {
        tokens[0]: ["news", "sports"], tokens[1]: ["news"], tokens[2]: ["news"]
    }  # fmt: skip
    assert fake.subscriptions(OTHER) == {}
    # Adding again is no error; removing what was never there neither.
    assert batch(tokens).json() == {"results": [{}, {}, {}]}
    assert batch(tokens[1:], "/topics/sports", add=False).json() == {"results": [{}, {}]}
    assert batch(tokens[:2], add=False).json() == {"results": [{}, {}]}
    assert fake.subscriptions(PROJECT) == {tokens[0]: ["sports"], tokens[2]: ["news"]}
    assert fake.stats()["subscription_requests"] == 5 and fake.stats()["subscriptions"] == 2


def test_batch_per_token_errors_in_order(fake, batch):
    gone = device(1)
    fake.unregister([gone])
    response = batch([device(0), "short", gone, "bad token with spaces!!", device(2)])
    assert response.status_code == 200
    assert response.json()["results"] == [
        {}, {"error": "INVALID_ARGUMENT"}, {"error": "NOT_FOUND"}, {"error": "INVALID_ARGUMENT"}, {}
    ]  # fmt: skip
    assert sorted(fake.subscriptions(PROJECT)) == [device(0), device(2)]
    assert batch([gone], add=False).json()["results"] == [{"error": "NOT_FOUND"}]


def test_unregister_drops_subscriptions(fake, batch, send):
    batch([device(0), device(1)])
    fake.unregister([device(0)])
    assert fake.subscriptions(PROJECT) == {device(1): ["news"]}
    response = send({"token": device(0)})
    assert (response.status_code, error_code(response)) == (404, "UNREGISTERED")
    assert send({"token": device(1)}).status_code == 200


def test_batch_too_many_topics_per_token(fake, batch):
    with fake._lock:  # 1,999 topics already
        fake._subscriptions[PROJECT] = {device(0): {f"t{i}": 0.0 for i in range(1999)}}
    assert batch([device(0)], "/topics/one-more").json() == {"results": [{}]}
    assert batch([device(0), device(1)], "/topics/too-many").json() == {
        "results": [{"error": "TOO_MANY_TOPICS"}, {}]
    }


@pytest.mark.parametrize(
    "body",
    [
        {"to": "/topics/news", "registration_tokens": []},
        {"to": "/topics/news", "registration_tokens": [device(i) for i in range(1001)]},
        {"to": "/topics/news", "registration_tokens": "fid00000:APA91b"},
        {"to": "/topics/news", "registration_tokens": [42]},
        {"to": "/topics/bad topic", "registration_tokens": [device(0)]},
        {"to": "/topics/" + "x" * 901, "registration_tokens": [device(0)]},
        {"to": "news", "registration_tokens": [device(0)]},
        {"to": "/topics/", "registration_tokens": [device(0)]},
        {"registration_tokens": [device(0)]},
        {"to": "/topics/news", "registration_tokens": [device(0)], "extra": 1},
        b"{not json",
        b"[]",
    ],
    ids=["empty", "1001", "not-a-list", "not-strings", "bad-topic", "901-char-topic",
         "bare-name", "no-name", "no-to", "unknown-field", "not-json", "not-an-object"],
)  # fmt: skip
def test_batch_rejects_bad_requests(fake, batch, body):
    response = batch(raw=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fake.subscriptions(PROJECT) == {}


def test_batch_accepts_1000_tokens(fake, batch):
    response = batch([device(i) for i in range(1000)])
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1000 and len(fake.subscriptions(PROJECT)) == 1000


def test_batch_auth(fake, batch):
    missing = batch([device(0)], bearer=None)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert batch([device(0)], bearer="ya29.made-up").status_code == 401
    no_header = batch([device(0)], iid_header=False)
    assert no_header.status_code == 401 and "Unauthorized" in no_header.text
    assert fake.subscriptions(PROJECT) == {}


def test_batch_uses_the_project_of_the_token(fake, http, batch, other_account):
    other = grant(http, assertion(other_account)).json()["access_token"]
    batch([device(0)], bearer=other)
    assert fake.subscriptions(OTHER) == {device(0): ["news"]}
    assert fake.subscriptions(PROJECT) == {}


def test_new_subscriptions_are_rate_limited(account, http):
    with FakeFCM(subscription_rate=5) as limited, httpx.Client(base_url=limited.base_url) as c:
        limited.register_account(account | {"token_uri": limited.token_uri})
        bearer = grant(c, assertion(account)).json()["access_token"]
        headers = {"Authorization": f"Bearer {bearer}", "access_token_auth": "true"}

        def add(tokens, topic="news"):
            body = {"to": f"/topics/{topic}", "registration_tokens": tokens}
            return c.post("/iid/v1:batchAdd", json=body, headers=headers)

        assert add([device(i) for i in range(4)]).status_code == 200
        assert add([device(i) for i in range(4)]).status_code == 200  # nothing new
        refused = add([device(i) for i in range(4, 6)])  # 4 + 2 > 5: all refused
        assert refused.status_code == 429
        assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert refused.headers["Retry-After"] == "1"
        assert len(limited.subscriptions(PROJECT)) == 4
        path = f"/v1/projects/{PROJECT}/registrations/{device(9)}/topicSubscriptions"
        assert c.post(path, params={"topic_name": "x"}, json={}, headers=headers).status_code == 200
        assert c.post(path, params={"topic_name": "y"}, json={}, headers=headers).status_code == 429
        assert add([device(0)], "news").status_code == 200  # removing/re-adding is not new
        time.sleep(1.05)
        assert add([device(i) for i in range(4, 6)]).status_code == 200


@pytest.mark.parametrize(
    ("kind", "status"), [("quota", 429), ("unavailable", 503), ("internal", 500), ("html502", 502)]
)
def test_subscription_faults(fake, batch, send, kind, status):
    fake.inject({"kind": kind, "api": "subscriptions", "retry_after": 2})
    response = batch([device(0)])
    assert response.status_code == status
    assert response.headers["Retry-After"] == "2"
    assert send({"topic": "news"}).status_code == 200  # sends are not hit by it
    assert batch([device(0)]).status_code == 200
    fake.inject({"kind": "unavailable"})  # a send fault does not hit subscriptions
    assert batch([device(1)]).status_code == 200
    assert send({"topic": "news"}).status_code == 503


def test_slow_subscription_fault(fake, batch):
    fake.inject({"kind": "slow", "seconds": 0.3, "api": "subscriptions"})
    started = time.monotonic()
    assert batch([device(0)]).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fault_api_is_checked(fake, http):
    with pytest.raises(ValueError):
        fake.inject({"kind": "quota", "api": "topics"})
    assert (
        http.post("/_fake/faults", json={"faults": [{"kind": "quota", "api": 1}]}).status_code
        == 400
    )


# --- topic subscriptions: FCM v1 API ----------------------------------------------------------
@pytest.fixture
def v1(http, token):
    def _v1(method, registration, topic=None, *, project=PROJECT, bearer=token, params=None):
        path = f"/v1/projects/{project}/registrations/{registration}/topicSubscriptions"
        if topic is not None:
            path += f"/{topic}"
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        kwargs = {"json": {}} if method == "POST" else {}
        return http.request(method, path, headers=headers, params=params, **kwargs)

    return _v1


def test_v1_subscribe_list_unsubscribe(fake, v1, clock):
    before = clock()
    created = v1("POST", device(0), params={"topic_name": "news"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["topic_name"] == "news"
    assert body["name"] == f"projects/{PROJECT}/registrations/{device(0)}/topicSubscriptions/news"
    stamp = dt.datetime.strptime(body["create_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(stamp.replace(tzinfo=dt.UTC).timestamp() - before) < 5
    again = v1("POST", device(0), params={"topic_name": "news"})
    assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"
    assert v1("POST", device(0), params={"topic_name": "a.b~c%d"}).status_code == 200
    listed = v1("GET", device(0)).json()["topic_subscriptions"]
    assert [s["topic_name"] for s in listed] == ["a.b~c%d", "news"]
    assert v1("GET", device(0), "news").json()["topic_name"] == "news"
    assert fake.subscriptions(PROJECT) == {device(0): ["a.b~c%d", "news"]}
    assert v1("DELETE", device(0), "news").status_code == 200
    missing = v1("DELETE", device(0), "news")
    assert missing.status_code == 404 and error_code(missing) is None
    assert v1("GET", device(0), "news").status_code == 404
    assert v1("GET", device(1)).json() == {}  # a valid token without subscriptions


def test_v1_list_pages(fake, v1):
    with fake._lock:
        fake._subscriptions[PROJECT] = {device(0): {f"t{i:02d}": 0.0 for i in range(5)}}
    first = v1("GET", device(0), params={"pageSize": 3}).json()
    assert [s["topic_name"] for s in first["topic_subscriptions"]] == ["t00", "t01", "t02"]
    rest = v1("GET", device(0), params={"pageSize": 3, "pageToken": first["next_page_token"]})
    assert [s["topic_name"] for s in rest.json()["topic_subscriptions"]] == ["t03", "t04"]
    assert "next_page_token" not in rest.json()


def test_v1_errors(fake, v1, http, other_account):
    fake.unregister([device(5)])
    gone = v1("POST", device(5), params={"topic_name": "news"})
    assert gone.status_code == 404
    assert (gone.json()["error"]["status"], error_code(gone)) == ("NOT_FOUND", "UNREGISTERED")
    assert error_code(v1("DELETE", device(5), "news")) == "UNREGISTERED"
    assert error_code(v1("GET", device(5))) == "UNREGISTERED"
    for response in (
        v1("POST", "short", params={"topic_name": "news"}),
        v1("POST", device(0), params={"topic_name": "bad topic"}),
        v1("POST", device(0), params={"topic_name": "x" * 901}),
        v1("POST", device(0)),
        v1("DELETE", device(0), "bad topic"),
    ):
        assert response.status_code == 400, response.text
        assert error_code(response) == "INVALID_ARGUMENT"
    denied = v1("POST", device(0), project=OTHER, params={"topic_name": "news"})
    assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"
    assert v1("POST", device(0), bearer=None, params={"topic_name": "news"}).status_code == 401
    assert v1("POST", device(0), "news").status_code == 404  # no such method: HTML 404
    with fake._lock:
        fake._subscriptions[PROJECT] = {device(0): {f"t{i}": 0.0 for i in range(2000)}}
    full = v1("POST", device(0), params={"topic_name": "news"})
    assert (full.status_code, error_code(full)) == (400, "TOO_MANY_TOPICS")
    assert fake.subscriptions(OTHER) == {}


def test_v1_subscription_faults(fake, v1):
    fake.inject({"kind": "quota", "api": "subscriptions", "retry_after": 4})
    refused = v1("POST", device(0), params={"topic_name": "news"})
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "4")
    assert v1("POST", device(0), params={"topic_name": "news"}).status_code == 200


# --- reach --------------------------------------------------------------------------------------
def test_reach_of_topic_and_condition_sends(fake, batch, send):
    a, b, c, d = (device(i) for i in range(4))
    batch([a, b, c], "/topics/sports")
    batch([a, d], "/topics/news")
    batch([b], "/topics/weather")
    condition = "'sports' in topics && !('news' in topics || 'weather' in topics)"
    names = {
        "sports": send({"topic": "sports"}).json()["name"],
        "condition": send({"condition": condition}).json()["name"],
        "either": send({"condition": "'news' in topics || 'weather' in topics"}).json()["name"],
        "nobody": send({"topic": "nobody"}).json()["name"],
    }
    send({"topic": "sports"}, validate_only=True)  # not a send: reaches nobody
    send({"token": a})  # a token send is no topic fan-out
    records = {m["name"]: m for m in fake.messages(PROJECT)}
    assert records[names["sports"]]["reached"] == [a, b, c]
    assert records[names["condition"]]["reached"] == [c]
    assert records[names["either"]]["reached"] == [a, b, d]
    assert records[names["nobody"]]["reached"] == []
    assert fake.reach(PROJECT) == {
        a: [names["sports"], names["either"]],
        b: [names["sports"], names["either"]],
        c: [names["sports"], names["condition"]],
        d: [names["either"]],
    }
    assert fake.reach(OTHER) == {}
    # Reach is fixed when a message is accepted: later changes do not rewrite it.
    batch([c], "/topics/news")
    assert fake.reach(PROJECT)[c] == [names["sports"], names["condition"]]


def test_http_subscription_control_endpoints(fake, http, batch, send):
    batch([device(0), device(1)])
    name = send({"topic": "news"}).json()["name"]
    listed = http.get("/_fake/subscriptions", params={"project_id": PROJECT}).json()
    assert listed == {"subscriptions": {device(0): ["news"], device(1): ["news"]}}
    assert http.get("/_fake/subscriptions").status_code == 400
    assert http.get("/_fake/reach", params={"project_id": PROJECT}).json() == {
        "reach": {device(0): [name], device(1): [name]}
    }
    assert http.get("/_fake/messages").json()["messages"][0]["reached"] == [device(0), device(1)]
    assert http.post("/_fake/unregister", json={"tokens": [device(0)]}).json() == {
        "unregistered": 1
    }
    assert http.post("/_fake/unregister", json={"tokens": "x"}).status_code == 400
    assert fake.subscriptions(PROJECT) == {device(1): ["news"]}
    stats = http.get("/_fake/stats").json()
    assert (stats["subscription_requests"], stats["subscriptions"]) == (1, 1)
    assert http.delete("/_fake/messages").status_code == 200  # resets subscriptions too
    assert fake.subscriptions(PROJECT) == {} and fake.reach() == {}
    assert batch([device(0)]).json() == {"results": [{}]}  # no longer unregistered
