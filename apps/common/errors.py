"""Typed application errors. Each carries a stable `code` that clients may branch on.

Services raise these; the exception handler (apps/common/exceptions.py) renders every one
as {"error": {"code", "message", "details"}} with the class's HTTP status. They are plain
exceptions, not DRF's: services know nothing of HTTP frameworks, and a task or command
can raise and catch them too. The kinds every app uses live here; an app's own kinds live
in its `errors.py`. Every code is listed in the README ("Error codes"), held by a test.
"""

from typing import Any


class ApplicationError(Exception):
    status_code = 400
    code = "BAD_REQUEST"
    message = "The request could not be processed."

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        self.message = message or self.message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    code = "VALIDATION_ERROR"
    message = "Invalid data."

    @classmethod
    def on(cls, field: str, message: str) -> "ValidationFailed":
        return cls(details={field: [message]})


class AuthenticationFailed(ApplicationError):
    status_code = 401
    code = "AUTHENTICATION_FAILED"
    message = "The credentials could not be verified."


class PermissionDenied(ApplicationError):
    status_code = 403
    code = "PERMISSION_DENIED"
    message = "You do not have permission to perform this action."


class NotFound(ApplicationError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found."


class Conflict(ApplicationError):
    status_code = 409
    code = "CONFLICT"
    message = "The request conflicts with the current state of the resource."


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large."


# Idempotency-Key (apps/common/idempotency.py)
class IdempotencyKeyInvalid(ApplicationError):
    code = "IDEMPOTENCY_KEY_INVALID"
    message = "Idempotency-Key must be 1 to 255 printable ASCII characters."


class IdempotencyKeyReused(ApplicationError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was used with a different request; use a new key."


class IdempotencyRequestInProgress(ApplicationError):
    status_code = 409
    code = "IDEMPOTENCY_REQUEST_IN_PROGRESS"
    message = "A request with this Idempotency-Key is still being processed; retry later."
