"""API keys of a workspace (the credentials for X-API-Key). HTTP in and out only; the
rules are in apps/workspaces/keys.py. Admins and owners, with a JWT: these routes declare no
API key scope, so a key can never mint, rotate or revoke keys."""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from apps.workspaces import keys
from apps.workspaces.models import ApiKey, Role
from apps.workspaces.serializers import (
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    ApiKeyWithSecretSerializer,
)
from apps.workspaces.tenancy import WorkspaceScopedViewSet


@extend_schema_view(
    list=extend_schema(
        summary="List API keys",
        description="The workspace's API keys (credentials for `X-API-Key`), newest first: "
        "name, scopes, visible prefix, status (`active`, `expired`, `revoked`), expiry, last "
        "use, rotation (the previous prefix and until when it works) — never the secret. "
        "Admins and owners (not with an API key).",
    ),
    retrieve=extend_schema(
        summary="Get an API key",
        description="One API key of the workspace, without its secret. Admins and owners "
        "(not with an API key).",
    ),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    lookup_url_kwarg = "api_key_id"
    idempotency_redacted_fields = ("secret",)  # shown once; a replay confirms, without it

    def refine_queryset(self, queryset):
        return queryset.order_by("-created_at")

    @extend_schema(
        summary="Create an API key",
        description="Create a key for a server or pipeline to call the API with, in header "
        "`X-API-Key` (no `X-Workspace-ID` needed: the key names its workspace). `scopes` "
        "limit what it may do (`<area>:write` includes `<area>:read`; see the README's scope "
        "table); `expires_at` optionally ends it. The answer's `secret` is shown only this "
        "once — PushPilot keeps only its hash. Admins and owners (not with an API key).",
        request=ApiKeyCreateSerializer,
        examples=[
            OpenApiExample(
                "A CI pipeline",
                value={"name": "CI pipeline", "scopes": ["campaigns:write", "templates:read"]},
                request_only=True,
            )
        ],
        responses={201: ApiKeyWithSecretSerializer},
    )
    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = keys.create_api_key(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return self._issued(issued, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rotate an API key",
        description="Give a key a new secret, returned only this once. The previous secret "
        "keeps working for API_KEY_ROTATION_GRACE_SECONDS (default 24 h; "
        "`previous_valid_until` says until when), then fails with 401; rotating again ends "
        "it at once. Scopes, expiry and the key's id stay. A revoked or expired key: 409 "
        "CONFLICT. Admins and owners (not with an API key).",
        request=None,
        responses={200: ApiKeyWithSecretSerializer},
    )
    def rotate(self, request, api_key_id=None):
        issued = keys.rotate_api_key(key=self.get_object(), actor=request.user)
        return self._issued(issued, status.HTTP_200_OK)

    @extend_schema(
        summary="Revoke an API key",
        description="Disable a key for good, its current and previous secret at once: the "
        "next request with it, on any server, is refused (401). It stays in the list as "
        "`revoked`; revoking it again changes nothing. Admins and owners (not with an API "
        "key).",
        request=None,
        responses={204: None},
    )
    def destroy(self, request, api_key_id=None):
        keys.revoke_api_key(key=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @staticmethod
    def _issued(issued: keys.IssuedApiKey, status_code: int) -> Response:
        body = {**ApiKeySerializer(issued.key).data, "secret": issued.secret}
        return Response(body, status=status_code)
