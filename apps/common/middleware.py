"""Request id, one access-log line per request, and trailing-slash normalisation."""

import re
import time
import uuid

import structlog

from apps.common.context import client_ip_var, request_id_var
from apps.common.logging import get_logger

REQUEST_ID_HEADER = "X-Request-ID"
# Echo a caller's id only when it is a sane token: ids end up in logs and audit rows.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = get_logger("pushpilot.request")
NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def route_template(request) -> str | None:
    """The matched route as a template (`api/v1/templates/<pk>`), never the raw path: ids in
    log and metric labels would make every request unique."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    return NAMED_GROUP.sub(r"<\1>", match.route).lstrip("^").rstrip("$")


def client_ip(request) -> str | None:
    # Behind a proxy, DRF's NUM_PROXIES decides which X-Forwarded-For entry to trust; for the
    # audit trail the socket address is the one fact we know is not caller-supplied.
    return request.META.get("REMOTE_ADDR")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        rid_token = request_id_var.set(request_id)
        ip_token = client_ip_var.set(client_ip(request))
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            self.log(request, response.status_code, started)
            return response
        finally:
            request_id_var.reset(rid_token)
            client_ip_var.reset(ip_token)
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def log(request, status: int, started: float) -> None:
        user = getattr(request, "user", None)  # DRF writes the JWT user back onto the request
        workspace = getattr(request, "workspace", None)
        api_key_id = getattr(user, "api_key_id", None)  # a request made with an API key
        fields = {
            "user_id": str(user.pk)
            if user is not None and user.is_authenticated and api_key_id is None
            else None,
            # ("api_key..." would be redacted as a secret by the log processor)
            **({"actor_key_id": str(api_key_id)} if api_key_id else {}),
            "workspace_id": str(workspace.pk) if workspace is not None else None,
            "method": request.method,
            "route": route_template(request),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        level = "error" if status >= 500 else "warning" if status >= 400 else "info"
        getattr(access_log, level)("request", **fields)


class TrailingSlashMiddleware:
    """`/api/v1/x` and `/api/v1/x/` are the same route, with no redirect (POST bodies survive).

    Routes are declared without a trailing slash; this strips one before URL resolution.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if len(path) > 1 and path.endswith("/") and not path.startswith(("/admin", "/static")):
            request.path_info = path.rstrip("/") or "/"
        return self.get_response(request)
