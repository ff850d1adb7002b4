"""`Idempotency-Key` on every POST (Stripe's semantics, the IETF httpapi draft's codes).

A POST with `Idempotency-Key: <1..255 printable ASCII characters>` from a caller:

* the first request with the key executes; its answer (status, body) is recorded IN THE SAME
  TRANSACTION as its effects (ATOMIC_REQUESTS), so a crash mid-request rolls both back and a
  retry executes anew, while a committed request is answered again, never executed twice;
* the same key and the same request (method, path, query, canonical JSON body) within
  IDEMPOTENCY_KEY_TTL_SECONDS: the recorded answer again, marked `Idempotent-Replayed: true`
  and carrying the first request's id as `X-Original-Request-ID`;
* the same key with another request: 422 IDEMPOTENCY_KEY_REUSED;
* while the first is still running: 409 IDEMPOTENCY_REQUEST_IN_PROGRESS, at once. On
  PostgreSQL a transaction-level advisory lock on (scope, key) says so without waiting on the
  unique index; on SQLite the IMMEDIATE request transaction serialises writers, so the
  second simply sees the first's record. The unique index is the backstop either way;
* a malformed key: 400 IDEMPOTENCY_KEY_INVALID.

Recorded: 2xx and 4xx answers of requests that got past authentication, permissions,
throttles and this check (Stripe stores every result of an executed request). A 4xx raised
by the view rolls back what the view wrote; the record is written after rolling back to a
savepoint taken just before the view ran. Not recorded: 5xx (the transaction was rolled
back; the retry must execute), 429 (load, not the request), and anything refused before the
view ran. Fields a view lists in `idempotency_redacted_fields` (secrets shown once) are
recorded as null: a replay confirms the creation without the secret ever being stored.

Scope: the route's workspace (request.workspace; none outside the tenancy base) and the
caller (`caller_of`). Credential exchanges (sign-up, sign-in, token refresh, logout) have no
caller: the key is checked for form, but nothing is recorded (their answers are tokens,
which are never stored) and each retry executes again.

Views outside the request transaction (OutsideRequestTransaction: AI, the FCM test send,
event and device ingestion) commit their own short transactions: there a session-level
advisory lock (released with the connection if the process dies) gives the 409, and the
record is written after the view. A crash between the view's commit and the record means a
retry executes again: those routes are idempotent by themselves (events and devices by their
ids and tokens) or only call out (AI generation, a test push).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone

from apps.common.context import current_request_id
from apps.common.errors import (
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
)
from apps.common.exceptions import error_body
from apps.common.logging import get_logger
from apps.common.models import IdempotencyRecord

logger = get_logger("pushpilot.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ORIGINAL_REQUEST_ID_HEADER = "X-Original-Request-ID"
VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
SWEEP_BATCH = 5_000


class Replay(Exception):
    """Raised from the view's initial(): answer with the recorded response, run nothing."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("idempotent replay")
        self.response = response


# --- the parts ----------------------------------------------------------------------------------
def parse_key(raw: str) -> str:
    # The draft sends the key as a structured-field string ("..."); Stripe's clients send it
    # bare. Both name the same key.
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not VALID_KEY.match(key):
        raise IdempotencyKeyInvalid()
    return key


def caller_of(request) -> str | None:
    """Who is asking, as "<kind>:<id>": a signed-in user, else the credential in request.auth
    (an API key model, the ingest key's principal...). None for anonymous requests."""
    user = getattr(request, "user", None)
    if isinstance(user, get_user_model()) and user.is_authenticated:
        return f"user:{user.pk}"
    auth = getattr(request, "auth", None)
    for attribute in ("pk", "key_id"):
        ident = getattr(auth, attribute, None)
        if ident is not None:
            return f"{type(auth).__name__.lower()}:{ident}"
    return None


def fingerprint_of(request) -> str:
    """sha256 of method, path, sorted query and the body as canonical JSON (key order and
    whitespace do not make two requests different)."""
    data = request.data  # parsed by the view's own parsers (size limits included)
    if hasattr(data, "lists"):  # a QueryDict (an empty or form body)
        data = dict(data.lists())
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    query = sorted(request.query_params.lists())
    parts = [request.method, request._request.path_info, json.dumps(query), body]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _lock_id(workspace_id, caller: str, key: str) -> int:
    digest = hashlib.sha256(f"idempotency|{workspace_id}|{caller}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_lock(lock_id: int, *, session: bool) -> bool:
    function = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [lock_id])
        return cursor.fetchone()[0]


def _unlock(lock_id: int) -> None:
    # A connection that died took its session lock with it: nothing left to release.
    with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.body), status=record.status_code, content_type=record.content_type or None
    )
    response[REPLAYED_HEADER] = "true"
    if record.request_id:
        response[ORIGINAL_REQUEST_ID_HEADER] = record.request_id
    return response


def _storable(status_code: int) -> bool:
    return 200 <= status_code < 300 or (400 <= status_code < 500 and status_code != 429)


# --- one request's claim on its key -------------------------------------------------------------
class Claim:
    """Held from the check (before the view runs) to the answer (after it)."""

    def __init__(self, request, view, *, key, caller, fingerprint, lock_id, session_lock):
        self.request, self.view = request, view
        self.key, self.caller, self.fingerprint = key, caller, fingerprint
        self.workspace = getattr(request, "workspace", None)
        self.lock_id, self.session_lock = lock_id, session_lock
        self.in_request_transaction = connection.in_atomic_block
        # What the view writes is undone back to here when it answers with an error, so that
        # the record of that error can still be committed.
        self.savepoint = transaction.savepoint() if self.in_request_transaction else None

    def finish(self, response):
        if not _storable(response.status_code) or getattr(response, "streaming", False):
            return response
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        if self.in_request_transaction and connection.needs_rollback:
            # The view raised (the exception handler marked the request for rollback): undo
            # what it wrote, keep the transaction, record its answer.
            # (The flag first: Django refuses any statement, the rollback too, while it is set.)
            transaction.set_rollback(False)
            transaction.savepoint_rollback(self.savepoint)
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    workspace=self.workspace,
                    caller=self.caller,
                    key=self.key,
                    fingerprint=self.fingerprint,
                    method=self.request.method,
                    path=self.request._request.path_info[:500],
                    status_code=response.status_code,
                    content_type=response.get("Content-Type", ""),
                    body=self._recorded_body(response),
                    request_id=current_request_id() or "",
                    expires_at=timezone.now()
                    + timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS),
                )
        except IntegrityError:
            # Another request recorded the key first (only possible without the advisory lock):
            # this one must not take effect as well.
            if not self.in_request_transaction:
                logger.error("idempotency_record_lost_race", key=self.key, caller=self.caller)
                return response
            transaction.set_rollback(True)
            error = IdempotencyRequestInProgress()
            return HttpResponse(
                json.dumps(error_body(error.code, error.message)),
                status=error.status_code,
                content_type="application/json",
            )
        return response

    def _recorded_body(self, response) -> bytes:
        redacted = getattr(self.view, "idempotency_redacted_fields", ())
        content = response.content
        if not redacted or not content:
            return content
        try:
            data = json.loads(content)
        except ValueError:
            return content
        if isinstance(data, dict):
            data.update({field: None for field in redacted if field in data})
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()

    def release(self) -> None:
        if self.session_lock:
            self.session_lock = False
            _unlock(self.lock_id)


def begin(request, view) -> Claim | None:
    """Check the request's key before its view runs: None (no key, not a POST, no caller),
    a Claim to finish after the view, or Replay / a 409 / 422 / 400 raised."""
    if request.method != "POST" or HEADER not in request.headers:
        return None
    key = parse_key(request.headers[HEADER])
    caller = caller_of(request)
    if caller is None:
        return None  # a credential exchange: never recorded (see the module's docstring)
    fingerprint = fingerprint_of(request)
    workspace = getattr(request, "workspace", None)
    lock_id = _lock_id(getattr(workspace, "pk", None), caller, key)
    session_lock = False
    if connection.vendor == "postgresql":
        # Inside the request transaction the lock ends with it (commit or rollback); outside,
        # it is the connection's, released after the record (or by the server if we die).
        session_lock = not connection.in_atomic_block
        if not _try_lock(lock_id, session=session_lock):
            raise IdempotencyRequestInProgress()
    try:
        record = IdempotencyRecord.objects.filter(
            workspace=workspace, caller=caller, key=key
        ).first()
        if record is not None:
            if record.expires_at > timezone.now():
                if record.fingerprint != fingerprint:
                    raise IdempotencyKeyReused()
                logger.info("idempotent_replay", key=key, original_request_id=record.request_id)
                raise Replay(_replay(record))
            record.delete()  # expired: the key is new again
        return Claim(
            request, view, key=key, caller=caller, fingerprint=fingerprint, lock_id=lock_id,
            session_lock=session_lock,
        )  # fmt: skip
    except BaseException:
        if session_lock:
            _unlock(lock_id)
        raise


class IdempotentMixin:
    """On every API view (before APIView in the MRO; the tenancy base includes it): the key
    is checked after authentication, permissions and workspace resolution, and the answer
    recorded before the request transaction commits. A test walks the URL resolver and fails
    for any POST route whose view lacks it."""

    # Top-level fields of the answer never recorded (secrets shown once): a replay has null.
    idempotency_redacted_fields: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        self._idempotency = None
        super().initial(request, *args, **kwargs)
        self._idempotency = begin(request, self)

    def handle_exception(self, exc):
        if isinstance(exc, Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        claim = getattr(self, "_idempotency", None)
        if claim is not None:
            response = claim.finish(response)
        return response

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            claim = getattr(self, "_idempotency", None)
            if claim is not None:
                claim.release()


# --- housekeeping -------------------------------------------------------------------------------
def sweep(*, now=None, limit: int = SWEEP_BATCH) -> int:
    """Delete up to `limit` expired records (one bounded statement); returns how many."""
    now = now or timezone.now()
    expired = IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)
    deleted, _ = IdempotencyRecord.objects.filter(pk__in=list(expired[:limit])).delete()
    return deleted
