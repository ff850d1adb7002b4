"""Webhook endpoints and their delivery log: HTTP in and out only.

Roles: admins and owners manage endpoints (they carry the signing secrets and decide where
workspace data goes); members may read the endpoints (never a secret) and the delivery log.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.common.errors import NotFound
from apps.common.pagination import CursorPagination
from apps.webhooks import selectors, services
from apps.webhooks.models import WebhookAttempt, WebhookEndpoint
from apps.webhooks.serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    WebhookEndpointWithSecretSerializer,
    WebhookMessageSerializer,
)
from apps.workspaces.models import Role
from apps.workspaces.tenancy import WorkspaceScopedAPIView, WorkspaceScopedViewSet


@extend_schema_view(
    list=extend_schema(
        summary="List webhook endpoints",
        description="The workspace's webhook endpoints, newest first: URL, subscribed event "
        "types, enabled or disabled (with the reason and time), secret rotation, last "
        "success and failure — never the secret. Members and above.",
    ),
    retrieve=extend_schema(
        summary="Get a webhook endpoint",
        description="One webhook endpoint, without its secret. Members and above.",
    ),
    partial_update=extend_schema(
        summary="Change a webhook endpoint",
        description="Change the URL, description or event types; `enabled: false` disables "
        "it by hand, `enabled: true` enables it (as POST …/enable). Fields not sent are kept. "
        "A URL that is not allowed (scheme, credentials, a private address): 400. Admins and "
        "owners.",
        request=WebhookEndpointUpdateSerializer,
        responses=WebhookEndpointSerializer,
    ),
    destroy=extend_schema(
        summary="Delete a webhook endpoint",
        description="Delete the endpoint with its waiting events and its delivery log. "
        "Admins and owners.",
        responses={204: None},
    ),
)
class WebhookEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet
):
    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    read_role = Role.MEMBER
    write_role = Role.ADMIN
    lookup_url_kwarg = "webhook_endpoint_id"
    idempotency_redacted_fields = ("secret",)  # shown once; a replay confirms, without it
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def refine_queryset(self, queryset):
        return queryset.order_by("-created_at")

    @extend_schema(
        summary="Create a webhook endpoint",
        description="Register a URL to receive the workspace's events, signed per the "
        "Standard Webhooks specification (headers webhook-id, webhook-timestamp, "
        "webhook-signature). The answer's `secret` (whsec_…) is shown only this once: verify "
        'signatures with it. `event_types`: a list, or ["*"] for every type. https only '
        "outside the local mode; no credentials in the URL; no private, loopback or "
        "link-local address (400). At most 20 endpoints per workspace (409). Admins and "
        "owners.",
        request=WebhookEndpointCreateSerializer,
        examples=[
            OpenApiExample(
                "Campaign outcomes",
                value={
                    "url": "https://hooks.example.com/pushpilot",
                    "description": "Ops channel",
                    "event_types": ["campaign.completed", "campaign.failed"],
                },
                request_only=True,
            )
        ],
        responses={201: WebhookEndpointWithSecretSerializer},
    )
    def create(self, request):
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.create_endpoint(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return self._issued(issued, status.HTTP_201_CREATED)

    def partial_update(self, request, webhook_endpoint_id=None):
        endpoint = self.get_object()
        serializer = WebhookEndpointUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.update_endpoint(
            endpoint=endpoint, actor=request.user, **serializer.validated_data
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request, webhook_endpoint_id=None):
        services.delete_endpoint(endpoint=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate a webhook endpoint's secret",
        description="A new secret, returned only this once, signs from now on; the previous "
        "one keeps signing too — a second signature in webhook-signature — for "
        "WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS (24 h), so receivers switch without missing "
        "an event. Admins and owners.",
        request=None,
        responses={200: WebhookEndpointWithSecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, webhook_endpoint_id=None):
        issued = services.rotate_secret(endpoint=self.get_object(), actor=request.user)
        return self._issued(issued, status.HTTP_200_OK)

    @extend_schema(
        summary="Send a test event",
        description="Queue a `webhook.test` event for this endpoint alone, delivered like "
        "any other (signed, retried, in the log). A disabled endpoint gets it once enabled. "
        "Admins and owners.",
        request=None,
        responses={202: WebhookMessageSerializer},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, webhook_endpoint_id=None):
        message = services.send_test(endpoint=self.get_object(), actor=request.user)
        return Response(WebhookMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Enable a webhook endpoint",
        description="Enable an endpoint disabled by hand or automatically (after every "
        "attempt of an event's retry schedule failed): its waiting events are delivered "
        "again, in order, from where it stopped; the event given up stays failed (redeliver "
        "it). Enabling an enabled endpoint changes nothing. Admins and owners.",
        request=None,
        responses=WebhookEndpointSerializer,
    )
    @action(detail=True, methods=["post"])
    def enable(self, request, webhook_endpoint_id=None):
        endpoint = services.enable_endpoint(endpoint=self.get_object(), actor=request.user)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        summary="List an endpoint's deliveries",
        description="The delivery log, newest first: one row per attempt — event id and "
        "type, attempt number, outcome, HTTP status, latency, the first bytes of the response "
        "body and a few of its headers, the error (a timeout, a refused address, a redirect), "
        "times. Kept WEBHOOK_RETENTION_DAYS (30). Members and above.",
        responses=WebhookDeliverySerializer(many=True),
    )
    @action(
        detail=True,
        methods=["get"],
        serializer_class=WebhookDeliverySerializer,
        pagination_class=CursorPagination,
    )
    def deliveries(self, request, webhook_endpoint_id=None):
        page = self.paginate_queryset(selectors.attempts_of(self.get_object()))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @staticmethod
    def _issued(issued, status_code: int) -> Response:
        body = {**WebhookEndpointSerializer(issued.endpoint).data, "secret": issued.secret}
        return Response(body, status=status_code)


class WebhookRedeliverView(WorkspaceScopedAPIView):
    queryset = WebhookAttempt.objects.select_related("endpoint", "message")
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(
        summary="Redeliver an event",
        description="Queue the event of this delivery-log entry again for its endpoint, at "
        "the end of its line: same webhook-id and body, signed anew. A disabled endpoint gets "
        "it once enabled. The event already waiting to be delivered: 409. Admins and owners.",
        request=None,
        responses={202: WebhookMessageSerializer},
    )
    def post(self, request, webhook_endpoint_id, webhook_delivery_id):
        attempt = self.get_queryset().filter(
            endpoint_id=webhook_endpoint_id, pk=webhook_delivery_id
        )
        message = services.redeliver(attempt=_one(attempt), actor=request.user)
        return Response(WebhookMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)


def _one(queryset):
    found = queryset.first()
    if found is None:
        raise NotFound()
    return found
