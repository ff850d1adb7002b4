"""Topic subscriptions from the server: FCM's two APIs behind one function.

* One token: the FCM v1 topic subscription API
  (`POST|DELETE {FCM_BASE_URL}/v1/projects/{p}/registrations/{token}/topicSubscriptions`).
  More tokens (or one that cannot be a URL path segment): the Instance ID batch API
  (`POST {FCM_IID_BASE_URL}/iid/v1:batchAdd|batchRemove`) in chunks of MAX_BATCH_TOKENS.
* The same OAuth2 access tokens as sends (`client.access_tokens`); a 401 refreshes the token
  once and retries once, as sends do.
* Pacing: FCM limits new subscriptions per project (about 3,000 a second). Before a call that
  adds N tokens we take N from the project's budget for the current one-second window,
  FCM_SUBSCRIPTIONS_PER_SECOND, kept in Django's cache so that every process shares it; when
  it is spent we sleep until the next window. If the cache fails we go on: FCM's 429
  (QuotaExceeded) is the backstop. Fixed windows allow up to twice the rate across a window
  boundary; FCM's own limit is not clock-aligned either.
* httpx (sync): subscription changes come from tasks, a few requests each, not from the
  sender's event loop.
* Adding and removing are idempotent, so a call that failed part-way can be repeated whole.
"""

import os
import re
import threading
import time
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core.cache import cache

from apps.integrations.firebase.client import (
    FCM_ERROR_TYPE,
    FcmError,
    _error_code,
    _error_from,
    _error_payload,
    _first_line,
    _json,
    access_tokens,
    backoff_seconds,
    fcm_error,
)
from apps.integrations.firebase.metrics import fcm_subscription_changes
from apps.integrations.firebase.validation import MessageInvalid, validate_topic

MAX_BATCH_TOKENS = 1000
REAL_FCM_BASE_URL = "https://fcm.googleapis.com"
REAL_IID_BASE_URL = "https://iid.googleapis.com"
# Tokens that can go into the v1 API's URL path as they are (real ones always can).
PATH_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_\-:.~]+")
TOPIC_NAME = re.compile(r"[a-zA-Z0-9\-_.~%]{1,900}")
BUDGET_KEY = "fcm:subscriptions:{project_id}:{window}"


def change_subscriptions(
    service_account_info: dict, *, topic: str, tokens: list[str], subscribe: bool
) -> list[str | None]:
    """Add (subscribe=True) or remove tokens to/from one topic. Returns one entry per token, in
    order: None when it worked, else the per-token error code as FCM gives it ("NOT_FOUND",
    "INVALID_ARGUMENT", "TOO_MANY_TOPICS", ...).

    One token -> the v1 topicSubscriptions API (409 on add and 404-no-such-subscription on
    remove count as success; 404 UNREGISTERED -> "NOT_FOUND"; 400 -> "INVALID_ARGUMENT");
    more -> the Instance ID batch API in chunks of MAX_BATCH_TOKENS (smaller when
    FCM_SUBSCRIPTIONS_PER_SECOND is smaller).

    Raises FcmError subclasses for whole-request failures: QuotaExceeded (retry_after from
    Retry-After when given), Unavailable / InternalError / TransportFailed (retryable),
    AuthenticationFailed (after one forced token refresh), InvalidArgument (a bad topic name:
    before any request)."""
    topic = _checked_topic(topic)
    tokens = list(tokens)
    if not tokens:
        return []
    action = "add" if subscribe else "remove"
    single = len(tokens) == 1 and PATH_SAFE_TOKEN.fullmatch(tokens[0]) is not None
    api = "v1" if single else "iid"
    size = MAX_BATCH_TOKENS
    if subscribe:
        size = max(1, min(size, settings.FCM_SUBSCRIPTIONS_PER_SECOND or size))
    results: list[str | None] = []
    for start in range(0, len(tokens), size):
        chunk = tokens[start : start + size]
        if subscribe:
            _take_budget(service_account_info["project_id"], len(chunk))
        try:
            if single:
                outcome = [_change_one(service_account_info, topic, chunk[0], subscribe)]
            else:
                outcome = _change_batch(service_account_info, topic, chunk, subscribe)
        except FcmError as exc:
            fcm_subscription_changes.labels(api, action, exc.error_code).inc(len(chunk))
            raise
        for code in outcome:
            fcm_subscription_changes.labels(api, action, code or "success").inc()
        results.extend(outcome)
    return results


def _checked_topic(topic: str) -> str:
    if isinstance(topic, str):
        topic = topic.removeprefix("/topics/")
    try:
        validate_topic(topic)
    except MessageInvalid as exc:
        raise fcm_error("INVALID_ARGUMENT", exc.message) from None
    if not TOPIC_NAME.fullmatch(topic):
        raise fcm_error("INVALID_ARGUMENT", f"Invalid topic name: {topic!r}")
    return topic


# --- the two APIs -------------------------------------------------------------------------------
def _change_one(info: dict, topic: str, token: str, subscribe: bool) -> str | None:
    base = settings.FCM_BASE_URL.rstrip("/")
    project = quote(info["project_id"], safe="")
    url = f"{base}/v1/projects/{project}/registrations/{quote(token, safe=':')}/topicSubscriptions"
    if subscribe:
        response = _request(info, "POST", url, params={"topic_name": topic}, json={})
    else:
        response = _request(info, "DELETE", f"{url}/{quote(topic, safe='')}")
    status, payload = response.status_code, _json(response.content)
    if status == 200 or (status == 409 and subscribe):
        return None
    detail = _fcm_error_code(payload)
    is_json = isinstance(payload, dict)
    if status == 404 and is_json:
        if detail == "UNREGISTERED":
            return "NOT_FOUND"
        return None if not subscribe else "NOT_FOUND"  # no such subscription: removed already
    if status == 400 and is_json:
        return detail or "INVALID_ARGUMENT"
    raise _whole_request_error(response, payload)


def _change_batch(info: dict, topic: str, tokens: list[str], subscribe: bool) -> list[str | None]:
    base = (settings.FCM_IID_BASE_URL or _derived_iid_base()).rstrip("/")
    url = f"{base}/iid/v1:{'batchAdd' if subscribe else 'batchRemove'}"
    body = {"to": f"/topics/{topic}", "registration_tokens": tokens}
    response = _request(info, "POST", url, json=body, headers={"access_token_auth": "true"})
    payload = _json(response.content)
    if response.status_code != 200:
        raise _whole_request_error(response, payload)
    results = payload.get("results") if isinstance(payload, dict) else None
    if (
        not isinstance(results, list)
        or len(results) != len(tokens)
        or not all(isinstance(result, dict) for result in results)
    ):
        raise fcm_error(
            "INTERNAL",
            "The Instance ID API answered 200 without one result per token.",
            http_status=200,
            retryable=True,
            retry_after=backoff_seconds(1),
        )
    return [str(result["error"]) if result.get("error") else None for result in results]


def _derived_iid_base() -> str:
    base = settings.FCM_BASE_URL.rstrip("/")
    return REAL_IID_BASE_URL if base == REAL_FCM_BASE_URL else base


def _fcm_error_code(payload) -> str | None:
    for detail in _error_payload(payload).get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            return detail.get("errorCode") or None
    return None


def _whole_request_error(response: httpx.Response, payload) -> FcmError:
    status = response.status_code
    return _error_from(status, response.headers, payload, _error_code(status, payload), 1)


# --- HTTP -----------------------------------------------------------------------------------------
_http: httpx.Client | None = None
_http_pid: int | None = None
_http_lock = threading.Lock()


def _client() -> httpx.Client:
    """The process's pooled client (a forked child makes its own)."""
    global _http, _http_pid
    with _http_lock:
        if _http is None or _http_pid != os.getpid():
            _http = httpx.Client(headers={"User-Agent": "PushPilot/1.0"})
            _http_pid = os.getpid()
        return _http


def _request(info: dict, method: str, url: str, *, headers=None, **kwargs) -> httpx.Response:
    """One request with the account's access token; a 401 refreshes it and tries once more
    (the second 401 is returned, for the caller to turn into AuthenticationFailed)."""
    for refresh in (False, True):
        token = access_tokens.token(info, force_refresh=refresh)
        try:
            response = _client().request(
                method,
                url,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
                timeout=httpx.Timeout(settings.FCM_TIMEOUT_SECONDS, connect=5.0),
                **kwargs,
            )
        except httpx.TimeoutException:
            raise fcm_error(
                "TIMEOUT", "FCM did not answer in time.", retryable=True,
                retry_after=backoff_seconds(1),
            ) from None  # fmt: skip
        except httpx.HTTPError as exc:
            raise fcm_error(
                "CONNECTION_ERROR", f"FCM could not be reached: {_first_line(exc) or type(exc).__name__}",
                retryable=True, retry_after=backoff_seconds(1),
            ) from None  # fmt: skip
        if response.status_code != 401 or refresh:
            return response
    raise AssertionError("unreachable")


# --- pacing ---------------------------------------------------------------------------------------
def _take_budget(project_id: str, count: int) -> None:
    """Take `count` new subscriptions from the project's budget of this one-second window
    (shared by all processes through the cache); when it is spent, sleep to the next window
    and try there. A failing cache does not hold anything up."""
    rate = settings.FCM_SUBSCRIPTIONS_PER_SECOND
    if not rate or rate <= 0:
        return
    while True:
        window = int(time.time())
        key = BUDGET_KEY.format(project_id=project_id, window=window)
        try:
            cache.add(key, 0, timeout=5)
            used = cache.incr(key, count)
        except Exception:  # cache down (or the key evicted meanwhile): go on unpaced
            return
        if not isinstance(used, int) or used <= rate:
            return
        time.sleep(max(0.0, window + 1 - time.time()))
