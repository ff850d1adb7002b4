"""`X-API-Key` authentication: a workspace's key instead of a person's JWT.

The scope check is here, at authentication, so that it holds for every view that accepts
keys — workspace-scoped or not — in one place: a view declares the scope each method or
action needs (apps/common/scopes.py); a key without it, or any key on a view that declares
nothing, is a 403 naming what is missing. Which workspace a key acts in is the tenancy
base's business (apps/workspaces/tenancy.py).

Refusals raise DRF's exceptions (not ours): DRF then leaves the request anonymous. This
module is loaded by DRF's settings, so it must not import rest_framework.views (nor the
tenancy base, which does)."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.throttling import UserRateThrottle

from apps.common.scopes import declared_scope
from apps.common.throttling import WindowedRateThrottle
from apps.workspaces import keys
from apps.workspaces.models import ApiKey, scope_grants

API_KEY_HEADER = "X-API-Key"


class ApiKeyAuthentication(BaseAuthentication):
    """`X-API-Key: ppa_live_...` -> (ApiKeyPrincipal, ApiKey), if the view lets the key in."""

    def authenticate(self, request):
        secret = request.headers.get(API_KEY_HEADER)
        if secret is None:
            return None
        key = keys.key_for_secret(secret)  # 401 for unknown, revoked, expired
        view = (getattr(request, "parser_context", None) or {}).get("view")
        required = declared_scope(view, request.method)
        if required is None:
            raise exceptions.PermissionDenied(
                "This route does not accept API keys; call it with a member's bearer token."
            )
        if not any(scope_grants(held, required) for held in key.scopes):
            raise exceptions.PermissionDenied(f"This API key lacks the '{required}' scope.")
        keys.note_used(key)
        return keys.ApiKeyPrincipal(key), key

    def authenticate_header(self, request):
        return 'ApiKey header="X-API-Key"'


def api_key_of(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class HasApiKey(BasePermission):
    """For views outside the tenancy base that accept keys (the app-facing device routes):
    a key, whose workspace is the one asked for, if any."""

    def has_permission(self, request, view):
        key = api_key_of(request)
        if key is None:
            return False
        from apps.workspaces.tenancy import requested_workspace_id

        keys.check_requested_workspace(key, requested_workspace_id(request))
        return True


class MemberRateThrottle(WindowedRateThrottle, UserRateThrottle):
    """The `user` rate (THROTTLE_USER) for people, keyed as DRF's UserRateThrottle (per
    user, per address before sign-in); API keys have their own (below). Counted in windowed
    counters, not DRF's request history: every request of a person passes here, and the
    history of a day's 1,000 requests is a list of 1,000 floats read and written back whole
    each time."""

    def get_cache_key(self, request, view):
        if api_key_of(request) is not None:
            return None
        return super().get_cache_key(request, view)


class ApiKeyRateThrottle(WindowedRateThrottle):
    """Requests per API key (scope `api_key`, THROTTLE_API_KEY, default 600/min): a server's
    rate, counted with the windowed counter (cheap at any rate)."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        key = api_key_of(request)
        if key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.pk}
