"""The FCM HTTP v1 client.

* OAuth2 access tokens come from the service account through google-auth (which honours the
  account's `token_uri`); one credentials object per account is shared by every send in the
  process, refreshed by google-auth a few minutes before expiry, and once more on a 401.
* One pooled aiohttp session per process, on an event-loop thread of its own: `send_many`
  sends a batch concurrently, at most FCM_MAX_IN_FLIGHT_PER_PROJECT requests in flight per
  Firebase project in this process (FCM allows 1,000 concurrent topic fan-outs per project:
  size it so that worker processes x this stays below); `FcmClient.send` is one such send.
  aiohttp rather than httpx here: on the same machine and fake FCM, httpx's async pool
  cost ~1 ms of CPU per request (3.4 ms with 64 in flight on one client), aiohttp ~0.13 ms.
* Every failure becomes an `FcmError` that says whether it can succeed later and after how
  long (`retry_after`). The client never sleeps through a long wait: the engine decides
  when to retry.
"""

import asyncio
import atexit
import concurrent.futures
import contextlib
import hashlib
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

import aiohttp
import certifi
import urllib3
from django.conf import settings
from google.auth import exceptions as google_exceptions
from google.auth.transport.urllib3 import Request as GoogleRequest
from google.oauth2 import service_account

from apps.common.retry import backoff, retry_after_seconds
from apps.integrations.firebase.metrics import fcm_in_flight, fcm_latency, fcm_requests
from apps.integrations.firebase.validation import validate_message

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
RETRYABLE_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "TIMEOUT", "CONNECTION_ERROR"}
QUOTA_BACKOFF_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 300.0
# Google's canonical statuses -> FCM error codes, for error bodies without FcmError details.
STATUS_TO_CODE = {
    "INVALID_ARGUMENT": "INVALID_ARGUMENT",
    "NOT_FOUND": "UNREGISTERED",
    "PERMISSION_DENIED": "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED": "QUOTA_EXCEEDED",
    "UNAVAILABLE": "UNAVAILABLE",
    "INTERNAL": "INTERNAL",
    "UNAUTHENTICATED": "UNAUTHENTICATED",
}
HTTP_TO_CODE = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "UNREGISTERED", 429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


@dataclass
class FcmError(Exception):
    """A send that did not succeed. `retry_after` (seconds) is set when retrying can help."""

    error_code: str
    message: str
    http_status: int | None = None
    retryable: bool = False
    retry_after: float | None = None

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"{self.error_code}{status}: {self.message}"


# One subclass per FCM error code, so callers can `except Unregistered` where that reads
# better than comparing `error_code`; every one is still an FcmError with the same fields.
class InvalidArgument(FcmError):
    pass


class Unregistered(FcmError):
    pass


class SenderIdMismatch(FcmError):
    pass


class QuotaExceeded(FcmError):
    pass


class Unavailable(FcmError):
    pass


class InternalError(FcmError):
    pass


class ThirdPartyAuthError(FcmError):
    pass


class AuthenticationFailed(FcmError):
    """The token endpoint refused the account, or FCM refused our access token twice."""


class TransportFailed(FcmError):
    """No answer: a timeout or a connection error."""


ERROR_CLASSES: dict[str, type[FcmError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "UNREGISTERED": Unregistered,
    "SENDER_ID_MISMATCH": SenderIdMismatch,
    "QUOTA_EXCEEDED": QuotaExceeded,
    "UNAVAILABLE": Unavailable,
    "INTERNAL": InternalError,
    "THIRD_PARTY_AUTH_ERROR": ThirdPartyAuthError,
    "UNAUTHENTICATED": AuthenticationFailed,
    "AUTH_FAILED": AuthenticationFailed,
    "TIMEOUT": TransportFailed,
    "CONNECTION_ERROR": TransportFailed,
}


def fcm_error(code: str, message: str, **fields) -> FcmError:
    return ERROR_CLASSES.get(code, FcmError)(code, message, **fields)


def backoff_seconds(attempt: int) -> float:
    """Google's advice for UNAVAILABLE/INTERNAL: 1, 2, 4, 8 ... seconds, with jitter."""
    return round(backoff(attempt, base=1.0, cap=MAX_BACKOFF_SECONDS, jitter=(1.0, 1.5)), 3)


# --- access tokens ------------------------------------------------------------------------------
class AccessTokens:
    """google-auth credentials per service account, shared by all sends in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: dict[tuple, tuple[service_account.Credentials, threading.Lock]] = {}
        self._http = urllib3.PoolManager(num_pools=4, maxsize=8, timeout=10.0)

    def _entry(self, info: dict):
        # The key itself is part of the identity: an account re-uploaded with a new key (same
        # email and key id in a hand-edited file) must not reuse the old key's token.
        key_digest = hashlib.sha256(info["private_key"].encode()).hexdigest()
        key = (info["client_email"], info["token_uri"], key_digest)
        with self._lock:
            if key not in self._credentials:
                credentials = service_account.Credentials.from_service_account_info(
                    info, scopes=[FCM_SCOPE]
                )
                self._credentials[key] = (credentials, threading.Lock())
            return self._credentials[key]

    def credentials(self, info: dict) -> service_account.Credentials:
        return self._entry(info)[0]

    def token(self, info: dict, *, force_refresh: bool = False) -> str:
        credentials, lock = self._entry(info)
        with lock:  # one refresh at a time per account, however many threads send
            if force_refresh or not credentials.valid:
                try:
                    credentials.refresh(GoogleRequest(self._http))
                except google_exceptions.RefreshError as exc:
                    raise fcm_error(
                        "AUTH_FAILED",
                        f"The token endpoint refused the service account: {_first_line(exc)}",
                    ) from None
                except google_exceptions.TransportError as exc:
                    raise fcm_error(
                        "CONNECTION_ERROR",
                        f"The token endpoint could not be reached: {_first_line(exc)}",
                        retryable=True,
                        retry_after=backoff_seconds(1),
                    ) from None
            return credentials.token

    def clear(self) -> None:
        with self._lock:
            self._credentials.clear()


access_tokens = AccessTokens()


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n")[0][:300]


# --- HTTP: one aiohttp session per process, on its own event-loop thread -------------------------
class _Transport:
    """An event loop on a daemon thread, with one pooled session and one in-flight bound
    per Firebase project. Callers in any thread submit coroutines to it."""

    def __init__(self) -> None:
        self.timeout = aiohttp.ClientTimeout(total=settings.FCM_TIMEOUT_SECONDS, connect=5.0)
        self.max_in_flight = settings.FCM_MAX_IN_FLIGHT_PER_PROJECT
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        self.bounds: dict[str, asyncio.Semaphore] = {}
        threading.Thread(target=self.loop.run_forever, name="fcm-sender", daemon=True).start()

    def submit(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def _session(self) -> aiohttp.ClientSession:  # on the loop
        if self.session is None:
            # certifi's CA bundle, as the rest of the project's HTTP clients use (httpx).
            tls = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=tls)
            self.session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                headers={"User-Agent": "PushPilot/1.0", "Content-Type": "application/json"},
            )
        return self.session

    async def post(self, project_id: str, url: str, body: bytes, token: str, attempt: int):
        """(status, headers, body) of one POST, within the project's in-flight bound; a
        timeout or a connection failure is raised as a retryable FcmError."""
        bound = self.bounds.get(project_id)
        if bound is None:
            bound = self.bounds[project_id] = asyncio.Semaphore(self.max_in_flight)
        async with bound:
            fcm_in_flight.inc()
            started = time.perf_counter()
            try:
                async with self._session().post(
                    url, data=body, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    return response.status, response.headers, await response.read()
            except TimeoutError:
                fcm_requests.labels("TIMEOUT").inc()
                raise fcm_error(
                    "TIMEOUT", "FCM did not answer in time.", retryable=True,
                    retry_after=backoff_seconds(attempt),
                ) from None  # fmt: skip
            except aiohttp.ClientError as exc:
                fcm_requests.labels("CONNECTION_ERROR").inc()
                raise fcm_error(
                    "CONNECTION_ERROR", f"FCM could not be reached: {_first_line(exc) or type(exc).__name__}",
                    retryable=True, retry_after=backoff_seconds(attempt),
                ) from None  # fmt: skip
            finally:
                fcm_latency.observe(time.perf_counter() - started)
                fcm_in_flight.dec()

    def close(self) -> None:
        async def _close():
            if self.session is not None:
                await self.session.close()

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.submit(_close()).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)


_transport: _Transport | None = None
_transport_pid: int | None = None
_transport_lock = threading.Lock()


def transport() -> _Transport:
    """The process's transport (a forked child makes its own: threads do not survive fork)."""
    global _transport, _transport_pid
    with _transport_lock:
        if _transport is None or _transport_pid != os.getpid():
            _transport = _Transport()
            _transport_pid = os.getpid()
        return _transport


def reset_http_client() -> None:
    """Close the process's transport (after settings change, e.g. FCM_TIMEOUT_SECONDS in tests)."""
    global _transport
    with _transport_lock:
        if _transport is not None and _transport_pid == os.getpid():
            _transport.close()
        _transport = None


atexit.register(reset_http_client)


# --- sending ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """One message for `send_many`: `key` identifies it in the result. `message` must come
    from messages.build_message (which validates it)."""

    key: Hashable
    account: dict  # the service account JSON
    message: dict
    attempt: int = 1
    validate_only: bool = False
    not_before: float = 0.0  # epoch seconds: held until then (claimed ahead of its time)


NOT_SENT = None  # send_many's result for a message `may_send` held back


def send_many(
    sends: Iterable[Send],
    *,
    may_send: Callable[[], bool] = lambda: True,
    while_waiting: Callable[[dict], None] | None = None,
    wait_seconds: float = 10.0,
    base_url: str | None = None,
) -> dict[Hashable, str | FcmError | None]:
    """Send every message concurrently, none before its `not_before`; return, by key, FCM's
    message name, the FcmError, or NOT_SENT.

    `may_send()` is asked (on the sender thread; keep it cheap) just before each request
    goes out: a worker whose lease is gone stops. `while_waiting(finished)` runs in the
    calling thread every `wait_seconds` until all are done, with the results known so far
    (to renew that lease and record what is already settled)."""
    sends = list(sends)
    base = (base_url or settings.FCM_BASE_URL).rstrip("/")
    results: dict[Hashable, str | FcmError | None] = {}  # filled as each request ends
    pending = sends
    for refresh in (False, True):  # a second pass for stale tokens (FCM said 401)
        tokens = _tokens_for(pending, force_refresh=refresh)
        runnable = []
        for send in pending:
            token = tokens[_account_key(send.account)]
            if isinstance(token, FcmError):
                results[send.key] = token
            else:
                runnable.append((send, token))
        sender = transport()
        stale: set = set()
        future = sender.submit(
            _send_all(sender, runnable, base, may_send, not refresh, results, stale)
        )
        while True:
            try:
                future.result(timeout=wait_seconds)
                break
            except concurrent.futures.TimeoutError:
                if while_waiting is not None:
                    while_waiting(dict(results))
        pending = [send for send in pending if send.key in stale]
        if not pending:
            break
    return results


async def _send_all(sender: _Transport, runnable, base, may_send, retry_on_401, results, stale):
    """Send on the loop thread; each result lands in `results` (or its key in `stale`: sent
    again with a fresh token) as soon as its request ends."""

    async def one(send: Send, token: str) -> None:
        wait = send.not_before - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if not may_send():
            results[send.key] = NOT_SENT
            return
        project_id = send.account["project_id"]
        body = {"message": send.message}
        if send.validate_only:
            body["validate_only"] = True
        url = f"{base}/v1/projects/{project_id}/messages:send"
        try:
            status, headers, raw = await sender.post(
                project_id, url, json.dumps(body).encode(), token, send.attempt
            )
        except FcmError as exc:
            results[send.key] = exc
            return
        outcome = _outcome(status, headers, raw, send.attempt, retry_on_401)
        if outcome is _STALE_TOKEN:
            stale.add(send.key)
        else:
            results[send.key] = outcome

    await asyncio.gather(*(one(send, token) for send, token in runnable))


_STALE_TOKEN = object()


def _account_key(account: dict) -> tuple:
    return (account["client_email"], account["token_uri"], account["private_key"])


def _tokens_for(sends: list[Send], *, force_refresh: bool) -> dict[tuple, str | FcmError]:
    tokens: dict[tuple, str | FcmError] = {}
    for send in sends:
        key = _account_key(send.account)
        if key not in tokens:
            try:
                tokens[key] = access_tokens.token(send.account, force_refresh=force_refresh)
            except FcmError as exc:
                tokens[key] = exc
    return tokens


def _outcome(status: int, headers: Mapping, raw: bytes, attempt: int, retry_on_401: bool):
    payload = _json(raw)
    if status == 200 and isinstance(payload, dict) and "name" in payload:
        fcm_requests.labels("success").inc()
        return payload["name"]
    code = _error_code(status, payload)
    if status == 401 and retry_on_401 and code != "THIRD_PARTY_AUTH_ERROR":
        return _STALE_TOKEN  # the token went stale: refreshed once, then sent again
    error = _error_from(status, headers, payload, code, attempt)
    fcm_requests.labels(error.error_code).inc()
    return error


class FcmClient:
    def __init__(self, service_account_info: dict, *, base_url: str | None = None) -> None:
        self.info = service_account_info
        self.project_id = service_account_info["project_id"]
        self.base_url = (base_url or settings.FCM_BASE_URL).rstrip("/")

    def fetch_token(self) -> str:
        """Prove the credentials work: the token endpoint must accept the account now, so a
        cached token does not count."""
        return access_tokens.token(self.info, force_refresh=True)

    def send(self, message: dict, *, validate_only: bool = False, attempt: int = 1) -> str:
        """Send one message; return FCM's message name. `attempt` (1-based) sizes the backoff
        reported with a retryable error."""
        validate_message(message)  # raises MessageInvalid before any request
        send = Send("one", self.info, message, attempt=attempt, validate_only=validate_only)
        result = send_many([send], base_url=self.base_url)["one"]
        if isinstance(result, FcmError):
            raise result
        return result


# --- responses -> errors ------------------------------------------------------------------------
def _json(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_payload(payload) -> dict:
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def _error_code(status: int, payload) -> str:
    error = _error_payload(payload)
    for detail in error.get("details") or []:
        is_fcm_error = isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE
        if is_fcm_error and detail.get("errorCode"):
            return detail["errorCode"]
    if error.get("status") in STATUS_TO_CODE:
        return STATUS_TO_CODE[error["status"]]
    if status in HTTP_TO_CODE:
        return HTTP_TO_CODE[status]
    return "INTERNAL" if status >= 500 else "UNSPECIFIED_ERROR"


def _error_from(status: int, headers: Mapping, payload, code: str, attempt: int) -> FcmError:
    message = str(_error_payload(payload).get("message") or f"FCM answered HTTP {status}.")[:500]
    retryable = code in RETRYABLE_CODES
    retry_after = None
    if retryable:
        retry_after = retry_after_seconds(headers.get("Retry-After"))
        if retry_after is None:
            retry_after = (
                QUOTA_BACKOFF_SECONDS if code == "QUOTA_EXCEEDED" else backoff_seconds(attempt)
            )
    return fcm_error(
        code, message, http_status=status, retryable=retryable, retry_after=retry_after
    )
