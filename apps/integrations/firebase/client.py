"""The FCM HTTP v1 client.

* OAuth2 access tokens come from the service account through google-auth (which honours the
  account's `token_uri`); one credentials object per account is shared by every send in the
  process, refreshed by google-auth a few minutes before expiry, and once more on a 401.
* One pooled HTTP/2 `httpx.Client` per process.
* Every failure becomes an `FcmError` that says whether it can succeed later and after how
  long (`retry_after`). The client never sleeps through a long wait: the task layer decides
  whether to retry in-process or reschedule.
"""

import email.utils
import hashlib
import os
import random
import threading
import time
from dataclasses import dataclass

import httpx
import urllib3
from django.conf import settings
from google.auth import exceptions as google_exceptions
from google.auth.transport.urllib3 import Request as GoogleRequest
from google.oauth2 import service_account
from prometheus_client import Counter, Histogram

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

fcm_requests = Counter(
    "fcm_requests_total", "Requests to FCM messages:send by outcome.", ["outcome"]
)
fcm_latency = Histogram(
    "fcm_request_duration_seconds",
    "Latency of FCM messages:send requests.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


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
    base = min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, attempt - 1))
    return round(base * random.uniform(1.0, 1.5), 3)  # noqa: S311 (jitter, not crypto)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


# --- HTTP ---------------------------------------------------------------------------------------
_http_client: httpx.Client | None = None
_http_pid: int | None = None
_http_lock = threading.Lock()


def http_client() -> httpx.Client:
    """The process's pooled HTTP/2 client (re-created in a forked child)."""
    global _http_client, _http_pid
    with _http_lock:
        if _http_client is None or _http_pid != os.getpid():
            _http_client = httpx.Client(
                http2=True,
                timeout=httpx.Timeout(settings.FCM_TIMEOUT_SECONDS, connect=5.0),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                headers={"User-Agent": "PushPilot/1.0"},
            )
            _http_pid = os.getpid()
        return _http_client


def reset_http_client() -> None:
    """Close the pooled client (after settings change, e.g. FCM_TIMEOUT_SECONDS in tests)."""
    global _http_client
    with _http_lock:
        if _http_client is not None:
            _http_client.close()
        _http_client = None


# --- sending ------------------------------------------------------------------------------------
class FcmClient:
    def __init__(self, service_account_info: dict, *, base_url: str | None = None) -> None:
        self.info = service_account_info
        self.project_id = service_account_info["project_id"]
        self.base_url = (base_url or settings.FCM_BASE_URL).rstrip("/")

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/v1/projects/{self.project_id}/messages:send"

    def fetch_token(self) -> str:
        """Prove the credentials work: the token endpoint must accept the account now, so a
        cached token does not count."""
        return access_tokens.token(self.info, force_refresh=True)

    def send(self, message: dict, *, validate_only: bool = False, attempt: int = 1) -> str:
        """Send one message; return FCM's message name. `attempt` (1-based) sizes the backoff
        reported with a retryable error."""
        validate_message(message)  # raises MessageInvalid before any request
        body = {"message": message}
        if validate_only:
            body["validate_only"] = True
        response = self._post(body, attempt, force_refresh=False)
        if response.status_code == 401 and _error_code(response) != "THIRD_PARTY_AUTH_ERROR":
            response = self._post(body, attempt, force_refresh=True)  # the token went stale
        if response.status_code == 200:
            fcm_requests.labels("success").inc()
            return response.json()["name"]
        error = _error_from(response, attempt)
        fcm_requests.labels(error.error_code).inc()
        raise error

    def _post(self, body: dict, attempt: int, *, force_refresh: bool) -> httpx.Response:
        token = access_tokens.token(self.info, force_refresh=force_refresh)
        started = time.perf_counter()
        try:
            return http_client().post(
                self.send_url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TimeoutException:
            fcm_requests.labels("TIMEOUT").inc()
            raise fcm_error(
                "TIMEOUT", "FCM did not answer in time.", retryable=True,
                retry_after=backoff_seconds(attempt),
            ) from None  # fmt: skip
        except httpx.TransportError as exc:
            fcm_requests.labels("CONNECTION_ERROR").inc()
            raise fcm_error(
                "CONNECTION_ERROR", f"FCM could not be reached: {_first_line(exc)}",
                retryable=True, retry_after=backoff_seconds(attempt),
            ) from None  # fmt: skip
        finally:
            fcm_latency.observe(time.perf_counter() - started)


def _error_payload(response: httpx.Response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def _error_code(response: httpx.Response) -> str:
    error = _error_payload(response)
    for detail in error.get("details") or []:
        is_fcm_error = isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE
        if is_fcm_error and detail.get("errorCode"):
            return detail["errorCode"]
    status = error.get("status")
    if status in STATUS_TO_CODE:
        return STATUS_TO_CODE[status]
    if response.status_code in HTTP_TO_CODE:
        return HTTP_TO_CODE[response.status_code]
    return "INTERNAL" if response.status_code >= 500 else "UNSPECIFIED_ERROR"


def _error_from(response: httpx.Response, attempt: int) -> FcmError:
    code = _error_code(response)
    error = _error_payload(response)
    message = str(error.get("message") or f"FCM answered HTTP {response.status_code}.")[:500]
    retryable = code in RETRYABLE_CODES
    retry_after = None
    if retryable:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = (
                QUOTA_BACKOFF_SECONDS if code == "QUOTA_EXCEEDED" else backoff_seconds(attempt)
            )
    return fcm_error(
        code, message, http_status=response.status_code, retryable=retryable,
        retry_after=retry_after,
    )  # fmt: skip
