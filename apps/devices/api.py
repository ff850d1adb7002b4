"""Device endpoints: the app-facing registry (ingest key) and the team's audience views
(JWT, workspace-scoped). HTTP in and out only."""

from types import SimpleNamespace

import structlog
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.analytics.authentication import (
    BoundedJSONParser,
    HasIngestKey,
    IngestKeyAuthentication,
    IngestKeyThrottle,
)
from apps.common.errors import ValidationFailed
from apps.common.idempotency import IdempotentMixin
from apps.common.pagination import CursorPagination
from apps.common.transactions import OutsideRequestTransaction
from apps.devices import selectors, services, topics
from apps.devices.filters import DeviceFilter
from apps.devices.models import Device, TopicAudience
from apps.devices.serializers import (
    DeviceBatchSerializer,
    DeviceListSerializer,
    DeviceSerializer,
    EstimateQuerySerializer,
    EstimateSerializer,
    RegisteredDeviceSerializer,
    RegisterResultSerializer,
    TopicAudienceSerializer,
)
from apps.workspaces.authentication import ApiKeyAuthentication, ApiKeyRateThrottle, HasApiKey
from apps.workspaces.models import ApiKey
from apps.workspaces.tenancy import (
    CompiledWorkspaceListMixin,
    WorkspaceScopedAPIView,
    WorkspaceScopedViewSet,
)

COUNTED = (
    "Counts are of active devices registered through PushPilot (POST /devices): FCM cannot "
    "say how many devices a topic reaches, so installs that subscribe to topics on their "
    "own, without registering, are not counted."
)
RESERVED = (
    f"Reserved topics: `{topics.ZONE_PREFIX}<zone>` (IANA name, `/` and `+` percent-encoded), "
    f"`{topics.LANGUAGE_PREFIX}<tag>` and `{topics.BUCKET_PREFIX}<0-9>`."
)


class DeviceKeyThrottle(IngestKeyThrottle):
    """Requests per ingest key (scope `devices`, THROTTLE_DEVICES, default 1200/min)."""

    scope = "devices"


class _AppFacing(OutsideRequestTransaction, IdempotentMixin, APIView):
    """Called by every install of the app with its ingest key (no JWT, no workspace
    header: the key names the workspace), or by the team's own server with an API key
    with `devices:write` (server-side registration; an X-Workspace-ID, if sent, must be
    the key's). The service's transaction is the only one."""

    authentication_classes = [IngestKeyAuthentication, ApiKeyAuthentication]
    permission_classes = [HasIngestKey | HasApiKey]
    throttle_classes = [DeviceKeyThrottle, ApiKeyRateThrottle]
    api_key_scopes = {"POST": "devices:write", "DELETE": "devices:write"}
    parser_classes = [BoundedJSONParser]

    def workspace_id(self, request):
        principal = request.auth  # an ingest key's KeyPrincipal or an ApiKey: both name these
        credential = "actor_key" if isinstance(principal, ApiKey) else "ingest_key"
        structlog.contextvars.bind_contextvars(
            workspace_id=str(principal.workspace_id), **{credential: principal.prefix}
        )
        request._request.workspace = SimpleNamespace(pk=principal.workspace_id)
        return principal.workspace_id


class DeviceRegisterView(_AppFacing):
    @extend_schema(
        summary="Register a device (from the app)",
        description="An install of the app registers itself, at every start and whenever "
        "its token, zone, language or topics change: an upsert keyed by the token within the "
        "workspace. PushPilot puts it in its app topics plus exactly one zone, one language "
        "(the best of the workspace's languages for its own, else the workspace's default) "
        "and one bucket topic, through FCM's server-side subscription APIs, a moment later. "
        f"{RESERVED}\n\nAuthenticated by an ingest key in `X-PushPilot-Key` (or, from your "
        "server, an API key with `devices:write` in `X-API-Key`). 201 for a new "
        "token, 200 for a known one. A bad field: 400 naming it. The token is stored "
        "encrypted and never returned (a prefix at most). Throttled per key (THROTTLE_DEVICES, "
        "429 THROTTLED).",
        request=DeviceSerializer,
        examples=[
            OpenApiExample(
                "An iPhone in Lisbon",
                value={
                    "token": "fMEP0vJqS0:APA91bHqX8kR2x7yQ1Yb0t3F5c6D7e8F9g0H1i2J3k4L5m6N7o8P9q",
                    "time_zone": "Europe/Lisbon",
                    "language": "pt-PT",
                    "platform": "ios",
                    "app_version": "4.2.0",
                    "topics": ["news", "sports"],
                },
                request_only=True,
            )
        ],
        responses={201: RegisteredDeviceSerializer, 200: RegisteredDeviceSerializer},
    )
    def post(self, request):
        device = services.register_one(
            workspace_id=self.workspace_id(request), payload=request.data
        )
        return Response(
            RegisteredDeviceSerializer(_registered(device)).data,
            status=status.HTTP_201_CREATED if device.created else status.HTTP_200_OK,
        )


def _registered(device: services.Registration) -> dict:
    return {"token_prefix": device.token[: services.TOKEN_PREFIX_LENGTH],
            "created": device.created,
            "platform": device.platform, "time_zone": device.time_zone,
            "language": device.language, "topics": device.topics}  # fmt: skip


class DeviceBatchView(_AppFacing):
    @extend_schema(
        summary="Register devices in bulk (an import)",
        description="1 to 1000 devices, each as in POST /devices, for importing an existing "
        "audience from your backend. Each is validated on its own: invalid ones are counted "
        "in `rejected` and described in `errors` (by index), valid ones are registered at "
        "once; a token twice in one batch counts once, the last one wins. Authenticated by "
        "an ingest key (or an API key with `devices:write`); bodies over 1 MiB: 413 PAYLOAD_TOO_LARGE.",
        request=DeviceBatchSerializer,
        responses={202: RegisterResultSerializer},
    )
    def post(self, request):
        result = services.register_batch(
            workspace_id=self.workspace_id(request), payload=request.data
        )
        body = {"accepted": result.accepted, "created": result.created, "updated": result.updated,
                "rejected": result.rejected, "errors": result.errors}  # fmt: skip
        return Response(RegisterResultSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class DeviceTokenView(_AppFacing):
    @extend_schema(
        summary="Unregister a device (logout, erasure)",
        description="The install leaves every topic and the registry: its token is erased "
        "once FCM confirmed the unsubscriptions. A token this workspace does not know: 404. "
        "Authenticated by an ingest key (or an API key with `devices:write`).",
        request=None,
        responses={204: None},
    )
    def delete(self, request, device_token):
        services.unregister(workspace_id=self.workspace_id(request), token=device_token)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the team's view ----------------------------------------------------------------------------
@extend_schema(
    summary="List registered devices",
    description="The workspace's devices, newest first, filterable by `platform`, `status`, "
    "`time_zone` and `language`: platform, zone, language, topics, whether FCM has confirmed "
    "them, and the token's first characters only. Members and above.",
)
class AudienceDeviceViewSet(
    CompiledWorkspaceListMixin, mixins.ListModelMixin, WorkspaceScopedViewSet
):
    api_key_scopes = {"GET": "devices:read"}
    queryset = Device.objects.all()
    serializer_class = DeviceListSerializer
    filterset_class = DeviceFilter
    pagination_class = CursorPagination

    def refine_queryset(self, queryset):
        # The token's ciphertext and FCM's confirmed topics are never listed: not fetched.
        return queryset.defer("encrypted_token", "subscribed").order_by("-created_at", "id")


class AudienceTopicsView(WorkspaceScopedAPIView):
    api_key_scopes = {"GET": "devices:read"}
    queryset = TopicAudience.objects.none()  # for the schema's pagination; rows come from selectors

    @extend_schema(
        summary="List topics with their audience",
        description="Every topic with registered devices in it, largest first, with its "
        "devices per platform; `kind` filters app, zone, language or bucket topics. Kept "
        f"current as devices register and move, never counted by scanning. {COUNTED} "
        f"{RESERVED} Members and above.",
        parameters=[OpenApiParameter("kind", str, enum=topics.KINDS)],
        responses=TopicAudienceSerializer(many=True),
    )
    def get(self, request):
        kind = request.query_params.get("kind")
        if kind and kind not in topics.KINDS:
            raise ValidationFailed.on("kind", f"One of {', '.join(topics.KINDS)}.")
        rows = selectors.topic_audiences(workspace_id=self.workspace.pk, kind=kind)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(TopicAudienceSerializer(page, many=True).data)


class AudienceEstimateView(WorkspaceScopedAPIView):
    api_key_scopes = {"GET": "devices:read"}

    @extend_schema(
        summary="Estimate a target's audience",
        description="How many devices a `topic` or an FCM `condition` (e.g. "
        "`'news' in topics && !('pushpilot-lang-de' in topics)`) reaches, in total and per "
        "platform, evaluated over the registry's kept counts (fast at any audience size). "
        f"{COUNTED} Exactly one of `topic` and `condition`; an invalid one is a 400. Members "
        "and above.",
        parameters=[EstimateQuerySerializer],
        responses=EstimateSerializer,
    )
    def get(self, request):
        query = EstimateQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = selectors.estimate(workspace_id=self.workspace.pk, **query.validated_data)
        return Response(EstimateSerializer(result).data)
