"""Django-level error handlers, so that errors raised outside DRF keep the contract."""

from django.views.decorators.csrf import csrf_exempt

from apps.common.exceptions import error_response


@csrf_exempt
def api_not_found(request):
    """Unknown /api/ paths, any method: a JSON 404 in the contract, DEBUG or not."""
    return error_response("NOT_FOUND", "No such endpoint.", 404)


def bad_request(request, exception=None):
    return error_response("BAD_REQUEST", "Bad request.", 400)


def permission_denied(request, exception=None):
    return error_response("PERMISSION_DENIED", "Permission denied.", 403)


def not_found(request, exception=None):
    return error_response("NOT_FOUND", "Not found.", 404)


def server_error(request):
    return error_response("SERVER_ERROR", "Internal server error.", 500)
