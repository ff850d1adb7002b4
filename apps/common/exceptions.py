"""One renderer for every error: {"error": {"code", "message", "details"}}.

DRF calls `custom_exception_handler` for anything raised in an API view; Django's own
404/500 handlers (see config.urls) call `error_response` so non-DRF paths agree.
"""

import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.common.errors import ApplicationError
from apps.common.logging import get_logger

logger = get_logger("pushpilot.errors")

# DRF exception class -> our stable code. Order matters: subclasses first.
DRF_CODES: list[tuple[type[drf.APIException], str]] = [
    (drf.ValidationError, "VALIDATION_ERROR"),
    (drf.ParseError, "PARSE_ERROR"),
    (drf.NotAuthenticated, "NOT_AUTHENTICATED"),
    (drf.AuthenticationFailed, "AUTHENTICATION_FAILED"),
    (drf.PermissionDenied, "PERMISSION_DENIED"),
    (drf.NotFound, "NOT_FOUND"),
    (drf.MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (drf.NotAcceptable, "NOT_ACCEPTABLE"),
    (drf.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
    (drf.Throttled, "THROTTLED"),
]


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(code: str, message: str, status: int, details=None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


def _plain(detail: Any) -> Any:
    """ErrorDetail trees -> plain strings, lists and dicts."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(item) for item in detail]
    return str(detail)


def _validation_details(detail: Any) -> dict[str, Any]:
    plain = _plain(detail)
    if isinstance(plain, dict):
        return {
            key: value if isinstance(value, list | dict) else [value]
            for key, value in plain.items()
        }
    return {"non_field_errors": plain if isinstance(plain, list) else [plain]}


def _message(detail: Any, fallback: str) -> str:
    plain = _plain(detail)
    if isinstance(plain, str):
        return plain
    if isinstance(plain, dict) and isinstance(plain.get("detail"), str):
        return plain["detail"]  # SimpleJWT's InvalidToken carries {"detail", "code", "messages"}
    return fallback


def _code_for(exc: drf.APIException) -> str:
    for klass, code in DRF_CODES:
        if isinstance(exc, klass):
            return code
    # Another library's APIException: the generic code of its status class.
    return "SERVER_ERROR" if exc.status_code >= 500 else "BAD_REQUEST"


def custom_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    # Whatever happens, nothing the request wrote survives an error response.
    set_rollback()

    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    if isinstance(exc, RequestDataTooBig):
        body = error_body("PAYLOAD_TOO_LARGE", "The request body is too large (limit 1 MiB).")
        return Response(body, status=413)

    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, exc.details)
        return Response(body, status=exc.status_code, headers=_headers(exc))

    if isinstance(exc, drf.APIException):
        code = _code_for(exc)
        if isinstance(exc, drf.ValidationError):
            body = error_body(code, "Invalid data.", _validation_details(exc.detail))
        elif isinstance(exc, drf.Throttled):
            wait = math.ceil(exc.wait) if exc.wait is not None else None
            body = error_body(
                code, "Too many requests; slow down.", {"retry_after": wait} if wait else {}
            )
        else:
            body = error_body(code, _message(exc.detail, "Request failed."))
        return Response(body, status=exc.status_code, headers=_headers(exc))

    view = context.get("view")
    logger.exception("unhandled_exception", view=type(view).__name__ if view else None)
    return Response(error_body("SERVER_ERROR", "Internal server error."), status=500)


def _headers(exc: Exception) -> dict[str, str]:
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(math.ceil(exc.wait))
    return headers
