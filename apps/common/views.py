"""Django-level error handlers, so that errors raised outside DRF keep the contract."""

import functools

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


def read_only(view):
    """For the pages and probes outside the API (health, metrics, the schema and its docs):
    GET and HEAD answer, any other method is a 405 in the error contract."""

    @functools.wraps(view)
    @csrf_exempt
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = error_response(
                "METHOD_NOT_ALLOWED", f"Method {request.method} is not allowed here.", 405
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return wrapper
