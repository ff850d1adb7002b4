"""A local stand-in for FCM HTTP v1 and Google's OAuth2 token endpoint.

It is the independent referee of our FCM client: it re-implements the wire contract from
/work/shared/reference/fcm-v1.md with the standard library, PyJWT and cryptography only, and
deliberately imports nothing from Django or from the rest of ``apps``.

Endpoints
    POST /token                                   JWT-bearer grant -> access token
    POST /v1/projects/{project_id}/messages:send  FCM v1 send (and validate_only)
    POST /iid/v1:batchAdd, /iid/v1:batchRemove    Instance ID batch (un)subscribe, 1..1000
                                                  tokens to one topic (headers: Bearer token
                                                  and ``access_token_auth: true``)
    POST   /v1/projects/{p}/registrations/{token}/topicSubscriptions?topic_name=NAME
    GET    /v1/projects/{p}/registrations/{token}/topicSubscriptions[?pageSize=&pageToken=]
    GET    /v1/projects/{p}/registrations/{token}/topicSubscriptions/{NAME}
    DELETE /v1/projects/{p}/registrations/{token}/topicSubscriptions/{NAME}
                                                  FCM v1 topic subscription API (one token)
    GET  /_fake/messages[?project_id=]            accepted sends, oldest first; topic and
                                                  condition sends carry "reached": [tokens]
    DELETE /_fake/messages                        reset everything: messages, faults,
                                                  counters, subscriptions, unregistered marks
    POST /_fake/faults    {"faults": [...]}       script the next responses: of sends, or
                                                  with ``"api": "subscriptions"`` of the two
                                                  subscription APIs
    POST /_fake/accounts  <service-account JSON>  trust an account for token grants
    POST /_fake/unregister {"tokens": [...]}      mark tokens unregistered (app uninstalled)
    GET  /_fake/subscriptions?project_id=         {"subscriptions": {token: [topics]}}
    GET  /_fake/reach[?project_id=]               {"reach": {token: [message names]}}
    GET  /_fake/stats                             counters
    GET  /healthz                                 liveness

Subscriptions. A registration token is valid when it has a plausible shape
(``REGISTRATION_TOKEN_RE``) and has not been marked unregistered; the fake keeps, per project
(the one the access token was issued for), token -> topics, at most 2,000 topics per token.
New subscriptions are limited per project (``subscription_rate`` per rolling second, 3,000 by
default): over it, the whole request is a 429 RESOURCE_EXHAUSTED with Retry-After. Every
accepted topic or condition send records, when it is accepted, the tokens whose topics satisfy
its target (``reach``), so a test can check that every device got a message exactly once.
Unconfirmed details, chosen to be at least as strict as Google: the batch API's ``to`` must be
``/topics/NAME`` (the documented form; a bare name is refused); a batch request without
``access_token_auth: true`` is treated as a legacy API-key request and refused with 401; the
v1 API answers a token over the topic limit with 400 FAILED_PRECONDITION, errorCode
TOO_MANY_TOPICS.

Only registered accounts are trusted, in tests and standalone alike: the fake never hands a
token to a key it has not been shown (register via ``register_account`` or POST /_fake/accounts).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Container
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .accounts import make_demo_service_account

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600
# Google tolerates a little clock skew between the signer and its token endpoint.
CLOCK_SKEW = 300

MAX_MESSAGE_BYTES = 4096
MAX_TOPIC_MESSAGE_BYTES = 2048
MAX_CONDITION_TOPICS = 5
MAX_TTL_SECONDS = 2_419_200
MAX_APNS_COLLAPSE_ID_BYTES = 64
MAX_REQUEST_BYTES = 1_000_000

# Used with fullmatch: "$" alone would let a trailing newline through.
TOPIC_RE = re.compile(r"[a-zA-Z0-9\-_.~%]+")
ANALYTICS_LABEL_RE = re.compile(r"[a-zA-Z0-9\-_.~%]{1,50}")
DURATION_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{1,9}))?s")
DIGITS_RE = re.compile(r"[0-9]+")

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"

UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
MISSING_CREDENTIALS_MESSAGE = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
SHORT_LIVED_MESSAGE = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)

HTML_502 = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error 502 (Server Error)!!1</title>
  <p><b>502.</b> <ins>That\u2019s an error.</ins>
  <p>The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>
"""

HTML_404 = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error 404 (Not Found)!!1</title>
  <p><b>404.</b> <ins>That\u2019s an error.</ins>
  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That\u2019s all we know.</ins>
"""

SEND_PATH_RE = re.compile(r"/v1/projects/([^/]+)/messages:send")
TOPIC_SUBSCRIPTIONS_PATH_RE = re.compile(
    r"/v1/projects/([^/]+)/registrations/([^/]+)/topicSubscriptions(?:/([^/]+))?"
)
IID_PATHS = {"/iid/v1:batchAdd": True, "/iid/v1:batchRemove": False}  # path -> adds?

# A plausible FCM registration token (or Firebase installation id): URL-safe printable
# characters, ":" included (real tokens look like "<instance id>:APA91b..."), 20..4096 long.
REGISTRATION_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-:.~]{20,4096}")
MAX_SUBSCRIPTION_TOPIC_LENGTH = 900  # fcmtopics: [a-zA-Z0-9-_.~%]{1,900}
MAX_BATCH_TOKENS = 1000
MAX_TOPICS_PER_TOKEN = 2000
DEFAULT_SUBSCRIPTION_RATE = 3000  # new subscriptions per project per rolling second
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 1000, 2000

HTML_401 = """<HTML>
<HEAD>
<TITLE>Unauthorized</TITLE>
</HEAD>
<BODY BGCOLOR="#FFFFFF" TEXT="#000000">
<H1>Unauthorized</H1>
<H2>Error 401</H2>
</BODY>
</HTML>
"""


# --- responses ---------------------------------------------------------------------------------
class _Response(Exception):
    """A complete HTTP answer; raised from deep inside validation and rendered by the handler."""

    def __init__(
        self,
        status: int,
        body: dict | str,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type or (
            "application/json; charset=UTF-8"
            if isinstance(body, dict)
            else "text/html; charset=UTF-8"
        )


def google_error(code: int, status: str, message: str, details: list[dict] | None = None) -> dict:
    error: dict = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def fcm_error(code: int, status: str, error_code: str, message: str) -> dict:
    return google_error(code, status, message, [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}])


def _unauthenticated(message: str = UNAUTHENTICATED_MESSAGE) -> _Response:
    # Google's frontend answers bad bearer tokens before FCM sees the request: no FcmError.
    return _Response(
        401,
        google_error(401, "UNAUTHENTICATED", message),
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def _invalid_argument(field: str, description: str) -> _Response:
    """A semantic rejection by FCM itself: FcmError first, then the offending field."""
    return _Response(
        400,
        google_error(
            400,
            "INVALID_ARGUMENT",
            description,
            [
                {"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"},
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [{"field": field, "description": description}],
                },
            ],
        ),
    )


def _parse_error(field: str, description: str) -> _Response:
    """A rejection by Google's JSON->proto layer (unknown field, wrong type): no FcmError."""
    return _Response(
        400,
        google_error(
            400,
            "INVALID_ARGUMENT",
            description,
            [
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [{"field": field, "description": description}],
                }
            ],
        ),
    )


def _token_error(description: str, error: str = "invalid_grant") -> _Response:
    return _Response(400, {"error": error, "error_description": description})


# --- faults ------------------------------------------------------------------------------------
# kind -> (http status, canonical status, FcmError errorCode or None, default message)
_FAULTS: dict[str, tuple[int, str, str | None, str]] = {
    "quota": (
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
    ),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "unregistered": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "invalid_argument": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
    ),
    "sender_id_mismatch": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "third_party_auth": (
        401,
        "UNAUTHENTICATED",
        "THIRD_PARTY_AUTH_ERROR",
        "Auth error from APNS or Web Push Service",
    ),
    "expired_token": (401, "UNAUTHENTICATED", None, UNAUTHENTICATED_MESSAGE),
}
FAULT_KINDS = frozenset({*_FAULTS, "html502", "slow"})
# Which requests a fault hits: sends (the default) or the two subscription APIs.
FAULT_APIS = ("sends", "subscriptions")


def _check_fault(fault: dict) -> dict:
    if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
        raise ValueError(f"a fault is a dict with 'kind' in {sorted(FAULT_KINDS)}, got {fault!r}")
    if fault.get("api", "sends") not in FAULT_APIS:
        raise ValueError(f"a fault's 'api' is one of {list(FAULT_APIS)}, got {fault['api']!r}")
    if fault["kind"] == "slow":
        seconds = fault.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("a 'slow' fault needs 'seconds' >= 0")
    retry_after = fault.get("retry_after")
    if retry_after is not None and not isinstance(retry_after, int | float | str):
        raise ValueError("'retry_after' must be a number of seconds or an HTTP date")
    return dict(fault)


def _fault_response(fault: dict) -> _Response:
    kind = fault["kind"]
    headers = {}
    if fault.get("retry_after") is not None:
        retry_after = fault["retry_after"]
        headers["Retry-After"] = (
            str(int(retry_after)) if isinstance(retry_after, int | float) else retry_after
        )
    if kind == "html502":
        return _Response(502, HTML_502, headers=headers)
    code, status, error_code, message = _FAULTS[kind]
    message = fault.get("message", message)
    if error_code is None:
        response = _unauthenticated(message)
        response.headers.update(headers)
        return response
    return _Response(code, fcm_error(code, status, error_code, message), headers=headers)


# --- the message schema (proto3 JSON: snake_case or camelCase field names) -------------------
STR, BOOL, INT, NUMBER, DURATION, STR_LIST, DURATION_LIST, STR_MAP, STRUCT = (
    "TYPE_STRING",
    "TYPE_BOOL",
    "TYPE_INT32",
    "TYPE_FLOAT",
    "google.protobuf.Duration",
    "TYPE_STRING[]",
    "google.protobuf.Duration[]",
    "map<string, string>",
    "google.protobuf.Struct",
)


class _Enum(tuple):
    """Allowed names of a proto enum (proto3 JSON also accepts the numbers)."""


ANDROID_PRIORITY = _Enum(("NORMAL", "HIGH"))
NOTIFICATION_PRIORITY = _Enum(
    (
        "PRIORITY_UNSPECIFIED",
        "PRIORITY_MIN",
        "PRIORITY_LOW",
        "PRIORITY_DEFAULT",
        "PRIORITY_HIGH",
        "PRIORITY_MAX",
    )
)
VISIBILITY = _Enum(("VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"))
PROXY = _Enum(("PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"))

NOTIFICATION = {"title": STR, "body": STR, "image": STR}
FCM_OPTIONS = {"analytics_label": STR}
COLOR = {"red": NUMBER, "green": NUMBER, "blue": NUMBER, "alpha": NUMBER}
LIGHT_SETTINGS = {"color": COLOR, "light_on_duration": DURATION, "light_off_duration": DURATION}
ANDROID_NOTIFICATION = {
    "title": STR,
    "body": STR,
    "icon": STR,
    "color": STR,
    "sound": STR,
    "tag": STR,
    "click_action": STR,
    "body_loc_key": STR,
    "body_loc_args": STR_LIST,
    "title_loc_key": STR,
    "title_loc_args": STR_LIST,
    "channel_id": STR,
    "ticker": STR,
    "sticky": BOOL,
    "event_time": STR,
    "local_only": BOOL,
    "notification_priority": NOTIFICATION_PRIORITY,
    "default_sound": BOOL,
    "default_vibrate_timings": BOOL,
    "default_light_settings": BOOL,
    "vibrate_timings": DURATION_LIST,
    "visibility": VISIBILITY,
    "notification_count": INT,
    "light_settings": LIGHT_SETTINGS,
    "image": STR,
    "bypass_proxy_notification": BOOL,
    "proxy": PROXY,
}
ANDROID = {
    "collapse_key": STR,
    "priority": ANDROID_PRIORITY,
    "ttl": DURATION,
    "restricted_package_name": STR,
    "data": STR_MAP,
    "notification": ANDROID_NOTIFICATION,
    "fcm_options": FCM_OPTIONS,
    "direct_boot_ok": BOOL,
    "bandwidth_constrained_ok": BOOL,
    "restricted_satellite_ok": BOOL,
}
APNS = {
    "headers": STR_MAP,
    "payload": STRUCT,
    "fcm_options": {"analytics_label": STR, "image": STR},
    "live_activity_token": STR,
}
WEBPUSH = {
    "headers": STR_MAP,
    "data": STR_MAP,
    "notification": STRUCT,
    "fcm_options": {"link": STR, "analytics_label": STR},
}
MESSAGE = {
    "name": STR,
    "data": STR_MAP,
    "notification": NOTIFICATION,
    "android": ANDROID,
    "webpush": WEBPUSH,
    "apns": APNS,
    "fcm_options": FCM_OPTIONS,
    "token": STR,
    "topic": STR,
    "condition": STR,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _field_index(schema: dict) -> dict[str, str]:
    index = {}
    for name in schema:
        index[name] = name
        index[_camel(name)] = name
    return index


def _bad_value(path: str, type_name: str, value) -> _Response:
    return _parse_error(
        path, f"Invalid value at '{path}' ({type_name}), {json.dumps(value, ensure_ascii=False)}"
    )


def _normalize(value, schema, path: str):
    """Check ``value`` against ``schema`` and return it with snake_case field names."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return _raise(_bad_value(path, "TYPE_MESSAGE", value))
        index = _field_index(schema)
        out: dict = {}
        for key, item in value.items():
            name = index.get(key)
            if name is None:
                _raise(
                    _parse_error(
                        path,
                        f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': "
                        "Cannot find field.",
                    )
                )
            if name in out:
                _raise(
                    _parse_error(
                        path,
                        f"Invalid JSON payload received. Duplicate field \"{key}\" at '{path}'.",
                    )
                )
            # proto3 JSON treats an explicit null as "field not set".
            if item is None:
                continue
            out[name] = _normalize(item, schema[name], f"{path}.{name}")
        return out
    if isinstance(schema, _Enum):
        # Google's JSON front end matches enum names case-insensitively: firebase-admin has
        # always sent android.priority as "high" / "normal", and FCM accepts it.
        if isinstance(value, str) and value.upper() in schema:
            return value.upper()
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(schema):
            return schema[value]
        return _raise(_bad_value(path, "TYPE_ENUM", value))
    if schema in (STR, DURATION):
        if not isinstance(value, str):
            _raise(_bad_value(path, schema, value))
        return value
    if schema == BOOL:
        if not isinstance(value, bool):
            _raise(_bad_value(path, schema, value))
        return value
    if schema == INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        return _raise(_bad_value(path, schema, value))
    if schema == NUMBER:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        return _raise(_bad_value(path, schema, value))
    if schema in (STR_LIST, DURATION_LIST):
        if not isinstance(value, list):
            _raise(_bad_value(path, schema, value))
        for i, item in enumerate(value):
            if not isinstance(item, str):
                _raise(_bad_value(f"{path}[{i}]", STR, item))
        return list(value)
    if schema == STR_MAP:
        if not isinstance(value, dict):
            _raise(_bad_value(path, schema, value))
        for i, item in enumerate(value.values()):
            if not isinstance(item, str):
                _raise(_bad_value(f"{path}[{i}].value", STR, item))
        return dict(value)
    if schema == STRUCT:
        if not isinstance(value, dict):
            _raise(_bad_value(path, schema, value))
        return value
    raise AssertionError(f"unknown schema {schema!r}")  # a bug in the tables above


def _raise(response: _Response):
    raise response


# --- FCM's own rules ----------------------------------------------------------------------------
def _duration_seconds(value: str, path: str) -> float:
    match = DURATION_RE.fullmatch(value)
    if not match:
        _raise(
            _parse_error(path, f"Invalid value at '{path}' (google.protobuf.Duration), \"{value}\"")
        )
    sign, whole, frac = match.groups()
    seconds = int(whole) + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    return -seconds if sign else seconds


def _check_topic(topic: str, path: str) -> None:
    if not TOPIC_RE.fullmatch(topic):
        _raise(_invalid_argument(path, f"Invalid topic name: {topic!r}"))


_CONDITION_TOKEN_RE = re.compile(
    r"\s*(?:(?P<op>&&|\|\||!|\(|\))|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<word>[A-Za-z]+)|(?P<bad>\S))"
)


def _check_condition(condition: str) -> Callable[[Container[str]], bool]:
    """Parse ``condition``: ``'a' in topics`` terms joined by &&, ||, ! and parentheses.
    Returns its predicate: does a device subscribed to these topics match?"""
    path = "message.condition"

    def invalid(why: str):
        _raise(_invalid_argument(path, f"Invalid condition expression: {why}"))

    tokens: list[tuple[str, str]] = []
    for match in _CONDITION_TOKEN_RE.finditer(condition):
        if match.group("op"):
            tokens.append(("op", match.group("op")))
        elif match.group("sq") is not None or match.group("dq") is not None:
            tokens.append(
                ("topic", match.group("sq") if match.group("sq") is not None else match.group("dq"))
            )
        elif match.group("word"):
            tokens.append(("word", match.group("word")))
        elif match.group("bad"):
            invalid(f"unexpected character {match.group('bad')!r}")
    if not tokens:
        invalid("empty")

    pos = 0
    topics = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None)

    def take(kind, value=None):
        nonlocal pos
        token = peek()
        if token[0] != kind or (value is not None and token[1] != value):
            invalid(f"expected {value or kind} at token {pos + 1}")
        pos += 1
        return token[1]

    def either(a, b):
        return lambda subscribed: a(subscribed) or b(subscribed)

    def both(a, b):
        return lambda subscribed: a(subscribed) and b(subscribed)

    def or_expr():
        predicate = and_expr()
        while peek() == ("op", "||"):
            take("op", "||")
            predicate = either(predicate, and_expr())
        return predicate

    def and_expr():
        predicate = unary()
        while peek() == ("op", "&&"):
            take("op", "&&")
            predicate = both(predicate, unary())
        return predicate

    def unary():
        nonlocal topics
        if peek() == ("op", "!"):
            take("op", "!")
            inner = unary()
            return lambda subscribed: not inner(subscribed)
        if peek() == ("op", "("):
            take("op", "(")
            predicate = or_expr()
            take("op", ")")
            return predicate
        name = take("topic")
        take("word", "in")
        take("word", "topics")
        if not TOPIC_RE.fullmatch(name):
            invalid(f"invalid topic name {name!r}")
        topics += 1
        return lambda subscribed: name in subscribed

    try:
        predicate = or_expr()
    except RecursionError:
        invalid("nested too deeply")
    if pos != len(tokens):
        invalid(f"unexpected {tokens[pos][1]!r} at token {pos + 1}")
    if topics > MAX_CONDITION_TOPICS:
        invalid(f"{topics} topics; at most {MAX_CONDITION_TOPICS} are allowed")
    return predicate


def _check_data(data: dict, path: str) -> None:
    for key in data:
        lowered = key.lower()
        if lowered in ("from", "message_type") or lowered.startswith(("google", "gcm")):
            _raise(
                _invalid_argument(
                    f"{path}[{key}]", f"Invalid data payload key: {key!r} is reserved"
                )
            )


def _check_label(options: dict | None, path: str) -> None:
    if options and "analytics_label" in options:
        label = options["analytics_label"]
        if not ANALYTICS_LABEL_RE.fullmatch(label):
            _raise(
                _invalid_argument(f"{path}.analytics_label", f"Invalid analytics_label: {label!r}")
            )


def validate_message(message: dict) -> None:
    """FCM's semantic checks on a normalized (snake_case) message."""
    targets = [name for name in ("token", "topic", "condition") if message.get(name)]
    if len(targets) != 1:
        _raise(
            _invalid_argument(
                "message",
                "Exactly one of token, topic or condition must be set"
                + (f" (got {', '.join(targets)})" if targets else ""),
            )
        )
    if message.get("topic"):
        # The v1 API wants the bare name; "/topics/x" is the legacy form and fails the pattern.
        _check_topic(message["topic"], "message.topic")
    if message.get("condition"):
        _check_condition(message["condition"])
    if "data" in message:
        _check_data(message["data"], "message.data")
    _check_label(message.get("fcm_options"), "message.fcm_options")

    android = message.get("android") or {}
    if "data" in android:
        _check_data(android["data"], "message.android.data")
    if "ttl" in android:
        seconds = _duration_seconds(android["ttl"], "message.android.ttl")
        if not 0 <= seconds <= MAX_TTL_SECONDS:
            _raise(
                _invalid_argument(
                    "message.android.ttl",
                    f"TTL must be between 0s and {MAX_TTL_SECONDS}s, got {android['ttl']}",
                )
            )
    notification = android.get("notification") or {}
    for i, item in enumerate(notification.get("vibrate_timings", [])):
        _duration_seconds(item, f"message.android.notification.vibrate_timings[{i}]")
    for name in ("light_on_duration", "light_off_duration"):
        if name in notification.get("light_settings", {}):
            _duration_seconds(
                notification["light_settings"][name],
                f"message.android.notification.light_settings.{name}",
            )
    _check_label(android.get("fcm_options"), "message.android.fcm_options")

    apns = message.get("apns") or {}
    headers = {key.lower(): value for key, value in (apns.get("headers") or {}).items()}
    if "apns-priority" in headers and headers["apns-priority"] not in ("5", "10"):
        _raise(
            _invalid_argument(
                "message.apns.headers",
                f'Invalid apns-priority: {headers["apns-priority"]!r} (must be "5" or "10")',
            )
        )
    if "apns-expiration" in headers and not DIGITS_RE.fullmatch(headers["apns-expiration"]):
        _raise(
            _invalid_argument(
                "message.apns.headers",
                f"Invalid apns-expiration: {headers['apns-expiration']!r} (epoch seconds)",
            )
        )
    collapse_id = headers.get("apns-collapse-id")
    if collapse_id is not None and len(collapse_id.encode()) > MAX_APNS_COLLAPSE_ID_BYTES:
        _raise(
            _invalid_argument(
                "message.apns.headers",
                f"apns-collapse-id is longer than {MAX_APNS_COLLAPSE_ID_BYTES} bytes",
            )
        )
    _check_label(apns.get("fcm_options"), "message.apns.fcm_options")

    webpush = message.get("webpush") or {}
    webpush_headers = {key.lower(): value for key, value in (webpush.get("headers") or {}).items()}
    if "ttl" in webpush_headers and not DIGITS_RE.fullmatch(webpush_headers["ttl"]):
        _raise(_invalid_argument("message.webpush.headers", "Invalid webpush TTL header"))
    options = webpush.get("fcm_options") or {}
    if "link" in options:
        link = urlsplit(options["link"])
        if link.scheme != "https" or not link.netloc:
            _raise(
                _invalid_argument(
                    "message.webpush.fcm_options.link", "The link must be an HTTPS URL"
                )
            )
    _check_label(options, "message.webpush.fcm_options")


def message_size(message: dict) -> int:
    """Bytes of the message object as compact UTF-8 JSON (the fake's size rule)."""
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _check_size(raw_message: dict, normalized: dict) -> None:
    limit = (
        MAX_TOPIC_MESSAGE_BYTES
        if (normalized.get("topic") or normalized.get("condition"))
        else MAX_MESSAGE_BYTES
    )
    size = message_size(raw_message)
    if size > limit:
        # The reference: an oversized payload is a plain 400 without FcmError details.
        _raise(
            _Response(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    # Real FCM says no more than this (captured response), not even the size.
                    "Request contains an invalid argument.",
                ),
            )
        )


# --- the fake ----------------------------------------------------------------------------------
class _Account:
    __slots__ = ("client_email", "key_id", "project_id", "public_key")

    def __init__(self, client_email: str, project_id: str, key_id: str | None, public_key):
        self.client_email = client_email
        self.project_id = project_id
        self.key_id = key_id
        self.public_key = public_key


class FakeFCM:
    """FCM HTTP v1 + Google's token endpoint on a local port.

    ``clock`` (default ``time.time``) drives token expiry, JWT time checks and ``received_at``
    so tests can age tokens without sleeping.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = 3600,
        *,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
        subscription_rate: int = DEFAULT_SUBSCRIPTION_RATE,
    ):
        self.host = host
        self.port = port
        self.token_ttl = int(token_ttl)
        self.clock = clock
        self.verbose = verbose
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (project_id, expires_at)
        self._messages: list[dict] = []
        self._faults: deque[dict] = deque()
        self._subscription_faults: deque[dict] = deque()
        self._last_id_us = 0
        self.token_requests = 0
        self.send_requests = 0
        self.subscription_requests = 0
        self.subscription_rate = int(subscription_rate)
        # project -> registration token -> topic -> create time (epoch seconds)
        self._subscriptions: dict[str, dict[str, dict[str, float]]] = {}
        self._unregistered: set[str] = set()
        # project -> (monotonic time, new subscriptions) of the last second
        self._subscription_log: dict[str, deque[tuple[float, int]]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.token_uri = ""

    # lifecycle
    def start(self) -> FakeFCM:
        if self._server is not None:
            raise RuntimeError("FakeFCM is already running")
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self._server = server
        host, port = server.server_address[:2]
        self.port = port
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{port}"
        self.token_uri = f"{self.base_url}/token"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-fcm",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeFCM:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # control
    def register_account(self, info: dict) -> None:
        """Trust ``info`` (a service-account dict) for token grants; its key signs assertions."""
        if not isinstance(info, dict):
            raise ValueError("a service account is a JSON object")
        missing = [k for k in ("client_email", "private_key", "project_id") if not info.get(k)]
        if missing:
            raise ValueError(f"service account is missing {', '.join(missing)}")
        try:
            key = load_pem_private_key(info["private_key"].encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"private_key is not an unencrypted PEM key: {exc}") from exc
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("private_key must be an RSA key (RS256)")
        account = _Account(
            client_email=info["client_email"],
            project_id=info["project_id"],
            key_id=info.get("private_key_id"),
            public_key=key.public_key(),
        )
        with self._lock:
            self._accounts[account.client_email] = account

    def new_account(self, project_id: str = "demo-project") -> dict:
        """A fresh demo service account whose token_uri points here, already registered."""
        info = make_demo_service_account(project_id, token_uri=self.token_uri or "")
        self.register_account(info)
        return info

    def messages(self, project_id: str | None = None) -> list[dict]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._messages
                if project_id is None or m["project_id"] == project_id
            ]

    def inject(self, *faults: dict) -> None:
        """Script the next responses, in order: a fault with ``"api": "subscriptions"`` hits
        the next request to either subscription API, any other the next send."""
        checked = [_check_fault(f) for f in faults]
        with self._lock:
            for fault in checked:
                if fault.get("api", "sends") == "subscriptions":
                    self._subscription_faults.append(fault)
                else:
                    self._faults.append(fault)

    def reset(self) -> None:
        """Forget messages, faults, counters, subscriptions and unregistered marks (accounts
        and issued access tokens stay)."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self._subscription_faults.clear()
            self._subscriptions.clear()
            self._unregistered.clear()
            self._subscription_log.clear()
            self.token_requests = 0
            self.send_requests = 0
            self.subscription_requests = 0

    def stats(self) -> dict:
        with self._lock:
            return {
                "token_requests": self.token_requests,
                "send_requests": self.send_requests,
                "messages": len(self._messages),
                "subscription_requests": self.subscription_requests,
                "subscriptions": sum(
                    len(topics)
                    for tokens in self._subscriptions.values()
                    for topics in tokens.values()
                ),
            }

    def unregister(self, tokens) -> None:
        """The apps behind ``tokens`` were uninstalled: from now on both subscription APIs
        answer NOT_FOUND / UNREGISTERED for them, and so do sends to them; their
        subscriptions are gone."""
        if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokens is a list of strings")
        with self._lock:
            self._unregistered.update(tokens)
            for subscriptions in self._subscriptions.values():
                for token in tokens:
                    subscriptions.pop(token, None)

    def subscriptions(self, project_id: str) -> dict[str, list[str]]:
        """token -> its topics (sorted), for the tokens of ``project_id`` with any."""
        with self._lock:
            return {
                token: sorted(topics)
                for token, topics in sorted(self._subscriptions.get(project_id, {}).items())
                if topics
            }

    def reach(self, project_id: str | None = None) -> dict[str, list[str]]:
        """token -> names of the accepted topic/condition messages that reached it (when each
        was accepted, the token's topics satisfied its target), oldest first."""
        reached: dict[str, list[str]] = {}
        for message in self.messages(project_id):
            for token in message.get("reached", ()):
                reached.setdefault(token, []).append(message["name"])
        return dict(sorted(reached.items()))

    def expire_tokens(self) -> None:
        """Make every issued access token stale, as if the clock had passed their expiry."""
        with self._lock:
            self._tokens = {token: (project, 0.0) for token, (project, _) in self._tokens.items()}

    # token endpoint
    def _grant(self, form: dict[str, list[str]]) -> dict:
        with self._lock:
            self.token_requests += 1
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != JWT_BEARER_GRANT:
            _raise(
                _token_error(f"Invalid grant_type: {grant_type}", error="unsupported_grant_type")
            )
        assertion = (form.get("assertion") or [""])[0]
        if not assertion:
            _raise(_token_error("Missing required parameter: assertion", error="invalid_request"))
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            _raise(_token_error("Invalid JWT: could not be parsed."))
        if header.get("alg") != "RS256":
            _raise(_token_error("Invalid JWT Signature."))
        issuer = unverified.get("iss")
        with self._lock:
            account = self._accounts.get(issuer) if isinstance(issuer, str) else None
        if account is None:
            _raise(_token_error("Invalid grant: account not found"))
        kid = header.get("kid")
        if kid is not None and account.key_id and kid != account.key_id:
            _raise(_token_error("Invalid JWT Signature."))
        try:
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                # Time and audience are checked below against our clock and both audiences.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            _raise(_token_error("Invalid JWT Signature."))
        except jwt.PyJWTError as exc:
            _raise(_token_error(f"Invalid JWT: {exc}"))
        aud = claims.get("aud")
        if aud not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            _raise(
                _token_error(
                    f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_AUDIENCE}"
                )
            )
        scope = claims.get("scope")
        if not isinstance(scope, str) or FCM_SCOPE not in scope.split():
            _raise(
                _token_error(
                    "Invalid OAuth scope or ID token audience provided.", error="invalid_scope"
                )
            )
        iat, exp = claims.get("iat"), claims.get("exp")
        now = self.clock()
        if (
            not isinstance(iat, int | float)
            or not isinstance(exp, int | float)
            or exp <= now
            or iat > now + CLOCK_SKEW
            or exp - iat > MAX_ASSERTION_LIFETIME
            or exp <= iat
        ):
            _raise(_token_error(SHORT_LIVED_MESSAGE))
        token = "ya29.c." + secrets.token_urlsafe(96)
        with self._lock:
            self._tokens[token] = (account.project_id, now + self.token_ttl)
        return {"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"}

    # send endpoint
    def _apply_fault(self, queue: deque[dict], authorization: str | None) -> None:
        """Pop the next scripted fault of ``queue`` (the caller counted the request) and
        answer with it; a "slow" fault only delays the normal answer."""
        with self._lock:
            fault = queue.popleft() if queue else None
        if fault is None:
            return
        if fault["kind"] == "slow":
            time.sleep(fault["seconds"])
            return
        bearer = _bearer(authorization)
        if fault["kind"] == "expired_token" and bearer:
            # Really expire it, so a client that retries without refreshing is caught.
            with self._lock:
                if bearer in self._tokens:
                    self._tokens[bearer] = (self._tokens[bearer][0], 0.0)
        _raise(_fault_response(fault))

    def _project_of(self, authorization: str | None) -> str:
        """The project the request's bearer token was issued for (401 when none is valid)."""
        bearer = _bearer(authorization)
        if bearer is None:
            _raise(_unauthenticated(MISSING_CREDENTIALS_MESSAGE))
        with self._lock:
            grant = self._tokens.get(bearer)
        if grant is None or grant[1] <= self.clock():
            _raise(_unauthenticated())
        return grant[0]

    def _send(self, project_id: str, authorization: str | None, body: bytes) -> dict:
        with self._lock:
            self.send_requests += 1
        self._apply_fault(self._faults, authorization)
        if self._project_of(authorization) != project_id:
            _raise(_permission_denied(project_id, "cloudmessaging.messages.create"))

        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _raise(_parse_error("", f"Invalid JSON payload received. {exc}"))
        if not isinstance(payload, dict):
            _raise(_parse_error("", "Invalid JSON payload received. Expected an object."))
        try:
            # "\ud800" is valid JSON but not valid text; Google refuses lone surrogates.
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            _raise(_parse_error("", "Invalid JSON payload received. Invalid UTF-16 surrogate."))
        index = {
            "message": "message",
            "validate_only": "validate_only",
            "validateOnly": "validate_only",
        }
        request: dict = {}
        for key, value in payload.items():
            if key not in index:
                _raise(
                    _parse_error(
                        "",
                        f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.',
                    )
                )
            if index[key] in request:
                _raise(_parse_error("", f'Invalid JSON payload received. Duplicate field "{key}".'))
            request[index[key]] = value
        validate_only = request.get("validate_only", False)
        if validate_only is None:
            validate_only = False
        if not isinstance(validate_only, bool):
            _raise(_bad_value("validate_only", BOOL, validate_only))
        raw_message = request.get("message")
        if not raw_message:
            _raise(
                _invalid_argument(
                    "message", "Request contains an invalid argument: message is required"
                )
            )
        message = _normalize(raw_message, MESSAGE, "message")
        validate_message(message)
        _check_size(raw_message, message)
        if message.get("token"):
            with self._lock:
                unregistered = message["token"] in self._unregistered
            if unregistered:
                _raise(_unregistered_response())

        if validate_only:
            # What real FCM answers to a dry run.
            return {"name": f"projects/{project_id}/messages/fake_message_id"}
        with self._lock:
            now = self.clock()
            micros = max(int(now * 1_000_000), self._last_id_us + 1)
            self._last_id_us = micros
            half = secrets.token_hex(4)
            message_id = f"0:{micros}%{half}{half}"
            name = f"projects/{project_id}/messages/{message_id}"
            record = {
                "project_id": project_id,
                "message": message,
                "message_id": message_id,
                "name": name,
                "received_at": now,
                "raw": raw_message,
            }
            if message.get("topic") or message.get("condition"):
                record["reached"] = self._reached(project_id, message)
            self._messages.append(record)
        return {"name": name}

    def _reached(self, project_id: str, message: dict) -> list[str]:
        """Tokens of the project whose topics satisfy the message's target (under the lock)."""
        if message.get("topic"):
            topic = message["topic"]

            def matches(subscribed):
                return topic in subscribed
        else:
            matches = _check_condition(message["condition"])
        tokens = self._subscriptions.get(project_id, {})
        return sorted(token for token, topics in tokens.items() if topics and matches(topics))

    # subscription APIs
    def _admit(self, project_id: str, new: int) -> float | None:
        """Count ``new`` subscriptions against the project's rate (under the lock); None when
        admitted, else the seconds until enough of the last second's have aged out."""
        if new <= 0:
            return None
        now = time.monotonic()
        log = self._subscription_log.setdefault(project_id, deque())
        while log and log[0][0] <= now - 1.0:
            log.popleft()
        used = sum(count for _, count in log)
        if used + new > self.subscription_rate:
            return (log[0][0] + 1.0 - now) if log else 1.0
        log.append((now, new))
        return None

    def _subscription_request(self, authorization: str | None) -> str:
        """Count, apply a scripted fault, authenticate: the project of the request."""
        with self._lock:
            self.subscription_requests += 1
        self._apply_fault(self._subscription_faults, authorization)
        return self._project_of(authorization)

    def _batch(self, adds: bool, headers, body: bytes) -> dict:
        """Instance ID ``iid/v1:batchAdd`` / ``:batchRemove``."""
        project_id = self._subscription_request(headers.get("Authorization"))
        if (headers.get("access_token_auth") or "").strip().lower() != "true":
            # Without it the Authorization header is read as a legacy API key, which no
            # longer authorises anything.
            _raise(_Response(401, HTML_401))
        payload = _request_json(body)
        unknown = sorted(set(payload) - {"to", "registration_tokens"})
        if unknown:
            _raise(_bad_request(f'Invalid JSON payload received. Unknown name "{unknown[0]}".'))
        to = payload.get("to")
        if not isinstance(to, str) or not to.startswith("/topics/"):
            _raise(_bad_request(f"Invalid 'to': expected /topics/NAME, got {to!r}"))
        topic = to.removeprefix("/topics/")
        if not _subscription_topic_ok(topic):
            _raise(_bad_request(f"Invalid topic name: {topic!r}"))
        tokens = payload.get("registration_tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            _raise(_bad_request("registration_tokens must be a list of strings"))
        if not 1 <= len(tokens) <= MAX_BATCH_TOKENS:
            _raise(
                _bad_request(
                    f"registration_tokens must hold 1 to {MAX_BATCH_TOKENS} tokens, "
                    f"got {len(tokens)}"
                )
            )
        with self._lock:
            subscriptions = self._subscriptions.setdefault(project_id, {})
            results: list[dict] = []
            new: list[str] = []
            for token in tokens:
                if not REGISTRATION_TOKEN_RE.fullmatch(token):
                    results.append({"error": "INVALID_ARGUMENT"})
                elif token in self._unregistered:
                    results.append({"error": "NOT_FOUND"})
                elif not adds or topic in subscriptions.get(token, ()) or token in new:
                    results.append({})
                elif len(subscriptions.get(token, ())) >= MAX_TOPICS_PER_TOKEN:
                    results.append({"error": "TOO_MANY_TOPICS"})
                else:
                    results.append({})
                    new.append(token)
            wait = self._admit(project_id, len(new))
            if wait is not None:
                _raise(_rate_limited(wait))
            now = self.clock()
            for token in new:
                subscriptions.setdefault(token, {})[topic] = now
            if not adds:
                for token, result in zip(tokens, results, strict=True):
                    if not result:
                        subscriptions.get(token, {}).pop(topic, None)
        return {"results": results}

    def _topic_subscriptions(
        self, method: str, project_id: str, token: str, topic: str | None, query: dict,
        headers, body: bytes,
    ) -> dict:  # fmt: skip
        """The FCM v1 topic subscription API: one registration, one topic per call."""
        if self._subscription_request(headers.get("Authorization")) != project_id:
            _raise(_permission_denied(project_id, "firebasemessaging.topicSubscriptions.manage"))
        if body.strip():
            _request_json(body)  # must be {} (or empty) when present
        if method == "POST":
            topic = (query.get("topic_name") or [None])[0]
            if topic is None:
                _raise(_invalid_argument("topic_name", "topic_name is required"))
        if topic is not None and not _subscription_topic_ok(topic):
            _raise(_invalid_argument("topic_name", f"Invalid topic name: {topic!r}"))
        if not REGISTRATION_TOKEN_RE.fullmatch(token):
            _raise(_invalid_argument("parent", "The registration token is not a valid FCM token"))
        with self._lock:
            if token in self._unregistered:
                _raise(_unregistered_response())
            topics = self._subscriptions.setdefault(project_id, {}).setdefault(token, {})
            prefix = f"projects/{project_id}/registrations/{token}/topicSubscriptions/"

            def resource(name: str) -> dict:
                return {
                    "name": prefix + name,
                    "topic_name": name,
                    "create_time": _rfc3339(topics[name]),
                }

            if method == "POST":
                if topic in topics:
                    _raise(_Response(409, google_error(409, "ALREADY_EXISTS",
                                                       "Requested entity already exists")))  # fmt: skip
                if len(topics) >= MAX_TOPICS_PER_TOKEN:
                    _raise(
                        _Response(
                            400,
                            fcm_error(400, "FAILED_PRECONDITION", "TOO_MANY_TOPICS",
                                      f"At most {MAX_TOPICS_PER_TOKEN} topics per app instance."),
                        )
                    )  # fmt: skip
                wait = self._admit(project_id, 1)
                if wait is not None:
                    _raise(_rate_limited(wait))
                topics[topic] = self.clock()
                return resource(topic)
            if topic is None:  # list
                names = sorted(topics)
                size = _int_param(query, "pageSize", DEFAULT_PAGE_SIZE)
                size = min(size, MAX_PAGE_SIZE) if size > 0 else DEFAULT_PAGE_SIZE
                start = _int_param(query, "pageToken", 0) if query.get("pageToken") else 0
                page = [resource(name) for name in names[start : start + size]]
                answer: dict = {"topic_subscriptions": page} if page else {}
                if start + size < len(names):
                    answer["next_page_token"] = str(start + size)
                return answer
            if topic not in topics:
                _raise(_Response(404, google_error(404, "NOT_FOUND",
                                                   "Requested entity was not found.")))  # fmt: skip
            if method == "GET":
                return resource(topic)
            del topics[topic]
            return {}


def _permission_denied(project_id: str, permission: str) -> _Response:
    return _Response(
        403,
        google_error(
            403,
            "PERMISSION_DENIED",
            f"Permission '{permission}' denied on resource "
            f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' "
            "(or it may not exist).",
            [
                {
                    "@type": ERROR_INFO_TYPE,
                    "reason": "IAM_PERMISSION_DENIED",
                    "domain": "cloudresourcemanager.googleapis.com",
                    "metadata": {"permission": permission, "resource": f"projects/{project_id}"},
                }
            ],
        ),
    )


def _unregistered_response() -> _Response:
    return _Response(
        404, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
    )


def _rate_limited(wait: float) -> _Response:
    return _Response(
        429,
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'New topic subscriptions' and limit "
            "'New topic subscriptions per second' of the project.",
        ),
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


def _bad_request(message: str) -> _Response:
    return _Response(400, google_error(400, "INVALID_ARGUMENT", message))


def _request_json(body: bytes) -> dict:
    try:
        value = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _raise(_bad_request(f"Invalid JSON payload received. {exc}"))
    if not isinstance(value, dict):
        _raise(_bad_request("Invalid JSON payload received. Expected an object."))
    return value


def _subscription_topic_ok(topic: str) -> bool:
    return bool(TOPIC_RE.fullmatch(topic)) and len(topic) <= MAX_SUBSCRIPTION_TOPIC_LENGTH


def _int_param(query: dict, name: str, default: int) -> int:
    raw = (query.get(name) or [None])[0]
    if raw is None:
        return default
    if not DIGITS_RE.fullmatch(raw):
        _raise(_bad_value(name, INT, raw))
    return int(raw)


def _rfc3339(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# --- HTTP plumbing -----------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A sender opening many connections at once (a worker sending a batch) must not overflow
    # the listen backlog: socketserver's default of 5 drops connections as real FCM never does.
    request_queue_size = 1024
    allow_reuse_address = True
    fake: FakeFCM

    def __init__(self, *args, **kwargs):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (timed out, or was killed mid-request) is normal here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Drop idle keep-alive connections so a stopped fake really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""
    # An idle keep-alive connection is closed after this many seconds.
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK
        # add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            _raise(_Response(413, google_error(413, "INVALID_ARGUMENT", "Request too large")))
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        try:
            body = self._read_body()
            url = urlsplit(self.path)
            path = unquote(url.path)
            query = parse_qs(url.query)
            self._reply(200, self._route(fake, method, path, query, body))
        except _Response as response:
            self._reply(response.status, response.body, response.headers, response.content_type)
        except ConnectionError:
            raise  # the client went away (killed, timed out): nobody to answer
        except Exception:
            # A bug in the fake must not look like a retryable FCM error: say so loudly.
            traceback.print_exc(file=sys.stderr)
            self._reply(
                500,
                google_error(500, "FAKE_FCM_BUG", traceback.format_exc(limit=3)),
            )

    def _route(self, fake: FakeFCM, method: str, path: str, query: dict, body: bytes) -> dict:
        match = SEND_PATH_RE.fullmatch(path)
        if match and method == "POST":
            return fake._send(match.group(1), self.headers.get("Authorization"), body)
        if path in IID_PATHS and method == "POST":
            return fake._batch(IID_PATHS[path], self.headers, body)
        match = TOPIC_SUBSCRIPTIONS_PATH_RE.fullmatch(path)
        if match and method in (("GET", "POST") if match.group(3) is None else ("GET", "DELETE")):
            project_id, token, topic = match.groups()
            return fake._topic_subscriptions(
                method, project_id, token, topic, query, self.headers, body
            )
        if path == "/token" and method == "POST":
            return fake._grant(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
        if path == "/healthz" and method == "GET":
            return {"status": "ok"}
        if path == "/_fake/messages" and method == "GET":
            project_id = (query.get("project_id") or [None])[0]
            return {"messages": fake.messages(project_id)}
        if path == "/_fake/messages" and method == "DELETE":
            fake.reset()
            return {"reset": True}
        if path == "/_fake/stats" and method == "GET":
            return fake.stats()
        if path == "/_fake/faults" and method == "POST":
            faults = _json_body(body).get("faults")
            if not isinstance(faults, list):
                _raise(_control_error('expected {"faults": [...]}'))
            try:
                fake.inject(*faults)
            except ValueError as exc:
                _raise(_control_error(str(exc)))
            return {"queued": len(faults)}
        if path == "/_fake/unregister" and method == "POST":
            tokens = _json_body(body).get("tokens")
            try:
                fake.unregister(tokens if isinstance(tokens, list) else "")
            except ValueError as exc:
                _raise(_control_error(str(exc)))
            return {"unregistered": len(tokens)}
        if path == "/_fake/subscriptions" and method == "GET":
            project_id = (query.get("project_id") or [None])[0]
            if not project_id:
                _raise(_control_error("project_id is required"))
            return {"subscriptions": fake.subscriptions(project_id)}
        if path == "/_fake/reach" and method == "GET":
            return {"reach": fake.reach((query.get("project_id") or [None])[0])}
        if path == "/_fake/accounts" and method == "POST":
            info = _json_body(body)
            try:
                fake.register_account(info)
            except ValueError as exc:
                _raise(_control_error(str(exc)))
            return {"client_email": info["client_email"], "project_id": info["project_id"]}
        # Google's front end answers unknown URLs (and wrong methods) with an HTML 404.
        _raise(_Response(404, HTML_404.format(path=_html_escape(path))))
        raise AssertionError("unreachable")

    def _reply(
        self,
        status: int,
        body: dict | str,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, dict):
            data = json.dumps(body, indent=2, ensure_ascii=False).encode("utf-8")
            content_type = content_type or "application/json; charset=UTF-8"
        else:
            data = body.encode("utf-8")
            content_type = content_type or "text/html; charset=UTF-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "private")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _json_body(body: bytes) -> dict:
    try:
        value = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _raise(_control_error(f"invalid JSON: {exc}"))
    if not isinstance(value, dict):
        _raise(_control_error("expected a JSON object"))
    return value


def _control_error(message: str) -> _Response:
    return _Response(400, google_error(400, "INVALID_ARGUMENT", message))


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
