"""How `POST /events` knows who is calling: an ingest key, not a user. The key names the
workspace, so this route is outside the workspace-scoped base (no JWT, no X-Workspace-ID)."""

import json

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions, renderers
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission

from apps.analytics import services
from apps.common.errors import PayloadTooLarge
from apps.common.throttling import WindowedRateThrottle

KEY_HEADER = "X-PushPilot-Key"


class IngestKeyAuthentication(BaseAuthentication):
    """`X-PushPilot-Key: ppk_live_...` -> (AnonymousUser, KeyPrincipal)."""

    def authenticate(self, request):
        secret = request.headers.get(KEY_HEADER)
        if not secret:
            return None
        principal = services.principal_for_secret(secret)
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked ingest key.")
        return AnonymousUser(), principal  # its use is noted by the lookup

    def authenticate_header(self, request):
        # Makes a missing key a 401 (DRF answers 403 when no scheme is announced).
        return 'PushPilot-Key realm="events"'


class HasIngestKey(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, services.KeyPrincipal)


class IngestKeyThrottle(WindowedRateThrottle):
    """Requests per ingest key (scope `ingest`, THROTTLE_INGEST, default 600/min). Every
    installation of an app shares its key: size the rate for the app's whole audience (the
    windowed counter costs the same at any rate)."""

    scope = "ingest"

    def get_cache_key(self, request, view):
        principal = request.auth
        if not isinstance(principal, services.KeyPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": principal.key_id}


class BoundedJSONParser(BaseParser):
    """JSON with a hard size limit, answered with 413 in the error format.

    Deliberately not a JSONParser subclass: DRF hands JSONParser `request.body`, where Django
    enforces DATA_UPLOAD_MAX_MEMORY_SIZE by raising RequestDataTooBig (not an API error).
    Here a declared Content-Length over the limit is refused before anything is read, and
    the stream is never read past the limit + 1 byte.
    """

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        too_large = PayloadTooLarge(
            f"The body is over {limit} bytes; send fewer events per request.",
            details={"max_bytes": limit},
        )
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise too_large
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise too_large
        try:
            # NaN and Infinity are not JSON (and PostgreSQL's jsonb refuses them).
            return json.loads(body, parse_constant=_not_json)
        except ValueError as exc:  # also bad UTF-8 (UnicodeDecodeError is a ValueError)
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


def _not_json(name: str):
    raise ValueError(f"{name} is not valid JSON")
