"""Django-level error handlers, so that errors raised outside DRF keep the contract."""

from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny

from apps.common.errors import NotFound
from apps.common.exceptions import error_response

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@api_view(ALL_METHODS)
@authentication_classes([])
@permission_classes([AllowAny])
def api_not_found(request):
    raise NotFound("No such endpoint.")


def bad_request(request, exception=None):
    return error_response("BAD_REQUEST", "Bad request.", 400)


def permission_denied(request, exception=None):
    return error_response("PERMISSION_DENIED", "Permission denied.", 403)


def not_found(request, exception=None):
    return error_response("NOT_FOUND", "Not found.", 404)


def server_error(request):
    return error_response("SERVER_ERROR", "Internal server error.", 500)
