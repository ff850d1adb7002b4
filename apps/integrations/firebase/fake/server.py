"""A local stand-in for FCM HTTP v1 and Google's OAuth2 token endpoint.

It is the independent referee of our FCM client: it re-implements the wire contract from
/work/shared/reference/fcm-v1.md with the standard library, PyJWT and cryptography only, and
deliberately imports nothing from Django or from the rest of ``apps``.

Endpoints
    POST /token                                   JWT-bearer grant -> access token
    POST /v1/projects/{project_id}/messages:send  FCM v1 send (and validate_only)
    GET  /_fake/messages[?project_id=]            accepted sends, oldest first
    DELETE /_fake/messages                        reset messages, faults and counters
    POST /_fake/faults    {"faults": [...]}       script the next send responses
    POST /_fake/accounts  <service-account JSON>  trust an account for token grants
    GET  /_fake/stats                             counters
    GET  /healthz                                 liveness

Only registered accounts are trusted, in tests and standalone alike: the fake never hands a
token to a key it has not been shown (register via ``register_account`` or POST /_fake/accounts).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
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


def _check_fault(fault: dict) -> dict:
    if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
        raise ValueError(f"a fault is a dict with 'kind' in {sorted(FAULT_KINDS)}, got {fault!r}")
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


def _check_condition(condition: str) -> None:
    """Parse ``condition``: ``'a' in topics`` terms joined by &&, ||, ! and parentheses."""
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

    def or_expr():
        and_expr()
        while peek() == ("op", "||"):
            take("op", "||")
            and_expr()

    def and_expr():
        unary()
        while peek() == ("op", "&&"):
            take("op", "&&")
            unary()

    def unary():
        nonlocal topics
        if peek() == ("op", "!"):
            take("op", "!")
            unary()
        elif peek() == ("op", "("):
            take("op", "(")
            or_expr()
            take("op", ")")
        else:
            name = take("topic")
            take("word", "in")
            take("word", "topics")
            if not TOPIC_RE.fullmatch(name):
                invalid(f"invalid topic name {name!r}")
            topics += 1

    try:
        or_expr()
    except RecursionError:
        invalid("nested too deeply")
    if pos != len(tokens):
        invalid(f"unexpected {tokens[pos][1]!r} at token {pos + 1}")
    if topics > MAX_CONDITION_TOPICS:
        invalid(f"{topics} topics; at most {MAX_CONDITION_TOPICS} are allowed")


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
        self._last_id_us = 0
        self.token_requests = 0
        self.send_requests = 0
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
        checked = [_check_fault(f) for f in faults]
        with self._lock:
            self._faults.extend(checked)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self.token_requests = 0
            self.send_requests = 0

    def stats(self) -> dict:
        with self._lock:
            return {
                "token_requests": self.token_requests,
                "send_requests": self.send_requests,
                "messages": len(self._messages),
            }

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
    def _send(self, project_id: str, authorization: str | None, body: bytes) -> dict:
        with self._lock:
            self.send_requests += 1
            fault = self._faults.popleft() if self._faults else None
        bearer = _bearer(authorization)
        if fault is not None:
            if fault["kind"] == "slow":
                time.sleep(fault["seconds"])
            else:
                if fault["kind"] == "expired_token" and bearer:
                    # Really expire it, so a client that retries without refreshing is caught.
                    with self._lock:
                        if bearer in self._tokens:
                            self._tokens[bearer] = (self._tokens[bearer][0], 0.0)
                _raise(_fault_response(fault))

        if bearer is None:
            _raise(_unauthenticated(MISSING_CREDENTIALS_MESSAGE))
        with self._lock:
            grant = self._tokens.get(bearer)
        if grant is None or grant[1] <= self.clock():
            _raise(_unauthenticated())
        if grant[0] != project_id:
            _raise(
                _Response(
                    403,
                    google_error(
                        403,
                        "PERMISSION_DENIED",
                        f"Permission 'cloudmessaging.messages.create' denied on resource "
                        f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' "
                        "(or it may not exist).",
                        [
                            {
                                "@type": ERROR_INFO_TYPE,
                                "reason": "IAM_PERMISSION_DENIED",
                                "domain": "cloudresourcemanager.googleapis.com",
                                "metadata": {
                                    "permission": "cloudmessaging.messages.create",
                                    "resource": f"projects/{project_id}",
                                },
                            }
                        ],
                    ),
                )
            )

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

        if validate_only:
            # What real FCM answers to a dry run.
            return {"name": f"projects/{project_id}/messages/fake_message_id"}
        with self._lock:
            now = self.clock()
            micros = max(int(now * 1_000_000), self._last_id_us + 1)
            self._last_id_us = micros
            half = secrets.token_hex(4)
            message_id = f"0:{micros}%{half}{half}"
            self._messages.append(
                {
                    "project_id": project_id,
                    "message": message,
                    "message_id": message_id,
                    "received_at": now,
                    "raw": raw_message,
                }
            )
        return {"name": f"projects/{project_id}/messages/{message_id}"}


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
