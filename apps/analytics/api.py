"""Analytics endpoints: HTTP in and out only (rules in services, reads in selectors)."""

import csv
import io
from types import SimpleNamespace

import structlog
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.analytics import selectors, services
from apps.analytics.authentication import (
    BoundedJSONParser,
    HasIngestKey,
    IngestKeyAuthentication,
    IngestKeyThrottle,
)
from apps.analytics.filters import AnalyticsEventFilter
from apps.analytics.models import AnalyticsEvent, IngestKey
from apps.analytics.serializers import (
    CampaignAnalyticsSerializer,
    CampaignStatsSerializer,
    EventBatchSerializer,
    IngestKeyCreateSerializer,
    IngestKeySerializer,
    IngestKeyWithSecretSerializer,
    IngestResultSerializer,
    OverviewQuerySerializer,
    OverviewSerializer,
    StoredEventSerializer,
)
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common.errors import ValidationFailed
from apps.common.idempotency import IdempotentMixin
from apps.common.pagination import CursorPagination
from apps.common.serializers import ErrorSerializer
from apps.common.transactions import OutsideRequestTransaction
from apps.workspaces.models import Role
from apps.workspaces.tenancy import (
    CompiledWorkspaceListMixin,
    WorkspaceScopedAPIView,
    WorkspaceScopedViewSet,
)


# --- ingestion --------------------------------------------------------------------------------
class EventIngestView(OutsideRequestTransaction, IdempotentMixin, APIView):
    """`POST /events` from apps, authenticated by an ingest key (no JWT, no workspace header).

    Outside the request transaction: the service's own transaction covers exactly the insert
    and the rollup upsert, so the rollup rows every concurrent batch touches are locked only
    for those two statements, not while the request is parsed and the response rendered.
    """

    authentication_classes = [IngestKeyAuthentication]
    permission_classes = [HasIngestKey]
    throttle_classes = [IngestKeyThrottle]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        summary="Report events from an app",
        description="How apps report what happened to a push: `delivered`, `opened`, "
        "`clicked`, `dismissed` or `conversion:<name>`, with the `pushpilot_notification_id` "
        "(or `pushpilot_campaign_id`) from the message's data, feeding the stats. "
        "Authenticated by an ingest key of the workspace in `X-PushPilot-Key` — no JWT and no "
        "`X-Workspace-ID` (the key names the workspace).\n\n"
        "1 to 1000 events per request. Each is validated on its own: invalid ones are "
        "counted in `rejected` and described in `errors`, valid ones are stored and counted "
        "at once; an event already received for this workspace (the same id and "
        "`occurred_at`) counts as a duplicate and changes nothing, so a batch can safely be "
        "retried unchanged; an id repeated inside one batch counts once. A missing, unknown or revoked "
        "key: 401. Bodies over 1 MiB: 413 PAYLOAD_TOO_LARGE. Throttled per key, shared by "
        "every installation of the app (429 THROTTLED).",
        request=EventBatchSerializer,
        examples=[
            OpenApiExample(
                "Opened then converted",
                summary="Ids from the push's data: pushpilot_notification_id",
                value={
                    "events": [
                        {
                            "id": "9b2f6c1e-3a4d-4e5f-8a7b-6c5d4e3f2a10",
                            "type": "opened",
                            "notification_id": "5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a21",
                            "occurred_at": "2026-12-01T09:00:04Z",
                            "platform": "ios",
                        },
                        {
                            "id": "9b2f6c1e-3a4d-4e5f-8a7b-6c5d4e3f2a11",
                            "type": "conversion:purchase",
                            "notification_id": "5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a21",
                            "occurred_at": "2026-12-01T09:03:40Z",
                            "platform": "ios",
                            "properties": {"order_value": 42.5, "currency": "EUR"},
                        },
                    ]
                },
                request_only=True,
            )
        ],
        responses={
            202: IngestResultSerializer,
            413: OpenApiResponse(ErrorSerializer, description="PAYLOAD_TOO_LARGE"),
        },
    )
    def post(self, request):
        principal = request.auth
        structlog.contextvars.bind_contextvars(
            workspace_id=str(principal.workspace_id), ingest_key=principal.prefix
        )
        # The access-log line names the workspace (it only reads `.pk`; no query for it).
        request._request.workspace = SimpleNamespace(pk=principal.workspace_id)
        result = services.ingest_events(workspace_id=principal.workspace_id, payload=request.data)
        # IngestResultSerializer's shape, built directly: the result holds only plain ints,
        # strings, lists and dicts already (the serializer costs ~0.1 ms a request here).
        body = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "errors": result.errors,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


# --- raw events -------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="List raw events",
        description="The events apps reported (POST /events), newest `occurred_at` first, "
        "as stored: the app's event id, type, time, the notification, campaign and content "
        "they concern, platform and properties, and when PushPilot received them. Filter by "
        "`type`, `campaign`, `notification` and time (`occurred_from`, at or after; "
        "`occurred_to`, before). Cursor pages (see Pagination). Raw events are kept for the "
        "workspace's retention window (GET /retention); stats come from rollups, which are "
        "kept longer. Members and above, or an API key with `analytics:read`.",
    )
)
class AnalyticsEventViewSet(
    CompiledWorkspaceListMixin, mixins.ListModelMixin, WorkspaceScopedViewSet
):
    """The workspace's raw events. Pages walk the (workspace, occurred_at, event_id) unique
    index: event_id, unique within an instant, is the cursor's tie-breaker."""

    api_key_scopes = {"GET": "analytics:read"}
    queryset = AnalyticsEvent.objects.all()
    serializer_class = StoredEventSerializer
    filterset_class = AnalyticsEventFilter
    pagination_class = CursorPagination
    cursor_field = "occurred_at"
    cursor_tiebreaker = "event_id"
    http_method_names = ["get", "head", "options"]


# --- ingest keys ------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="List ingest keys",
        description="The workspace's ingest keys (the credentials apps use for POST /events), "
        "newest first: name, visible prefix, status (`active` or `revoked`), last use, "
        "rotation and revocation times — never the secret. Admins and owners.",
    ),
    retrieve=extend_schema(
        summary="Get an ingest key",
        description="One ingest key of the workspace, without its secret. Admins and owners.",
    ),
)
class IngestKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Write-only credentials for apps to report events. Admins only; the secret is returned
    once, by create and rotate."""

    queryset = IngestKey.objects.all()
    serializer_class = IngestKeySerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    idempotency_redacted_fields = ("secret",)  # shown once; a replay confirms, without it
    lookup_url_kwarg = "ingest_key_id"
    http_method_names = ["get", "post", "head", "options"]

    def refine_queryset(self, queryset):
        return queryset.order_by("-created_at")

    @extend_schema(
        summary="Create an ingest key",
        description="Create a key for one app to report events with. The answer's `secret` "
        "is shown only this once — PushPilot keeps only its hash — so put it in the app "
        "now; it goes in the `X-PushPilot-Key` header of POST /events. Admins and owners.",
        request=IngestKeyCreateSerializer,
        examples=[OpenApiExample("iOS app", value={"name": "iOS app"}, request_only=True)],
        responses={201: IngestKeyWithSecretSerializer},
    )
    def create(self, request):
        serializer = IngestKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.create_ingest_key(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return self._issued(issued, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rotate an ingest key",
        description="Give a key a new secret, returned only this once; the old secret stops "
        "working (at once with a shared cache, within INGEST_KEY_CACHE_SECONDS at most). Ship "
        "the new secret in the app before rotating if old installations must keep "
        "reporting. Admins and owners. A revoked key: 409 CONFLICT.",
        request=None,
        responses={200: IngestKeyWithSecretSerializer},
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request, ingest_key_id=None):
        issued = services.rotate_ingest_key(key=self.get_object(), actor=request.user)
        return self._issued(issued, status.HTTP_200_OK)

    @extend_schema(
        summary="Revoke an ingest key",
        description="Disable a key for good: events sent with it are refused (401) from now "
        "on. It stays in the list as `revoked`; revoking it again changes nothing. Admins and "
        "owners.",
        request=None,
        responses=IngestKeySerializer,
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, ingest_key_id=None):
        key = services.revoke_ingest_key(key=self.get_object(), actor=request.user)
        return Response(IngestKeySerializer(key).data)

    @staticmethod
    def _issued(issued: services.IssuedKey, status_code: int) -> Response:
        body = {**IngestKeySerializer(issued.key).data, "secret": issued.secret}
        return Response(body, status=status_code)


# --- stats ------------------------------------------------------------------------------------
class CampaignStatsView(WorkspaceScopedAPIView):
    """Counts and rates of one campaign, in total and per content (from hourly rollups)."""

    api_key_scopes = {"GET": "analytics:read"}

    @extend_schema(
        summary="Get a campaign's stats",
        description="How a campaign did, in total and per content: notifications sent and "
        "failed, and what apps reported (delivered, opened, clicked, dismissed, conversions "
        "by name), with rates. Rates divide by `delivered` (a topic send is one notification, "
        "opens come from every device); click-through is clicked / opened; a rate with "
        "nothing to divide by is null. Exact at the time of `generated_at`, cached for a few "
        "seconds (ANALYTICS_CACHE_SECONDS). Members and above; another workspace's "
        "campaign: 404.",
        responses=CampaignStatsSerializer,
    )
    def get(self, request, campaign_id):
        stats = selectors.campaign_stats(workspace=self.workspace, campaign_id=campaign_id)
        return Response(CampaignStatsSerializer(stats).data)


CSV_COLUMNS = (
    "content_position", "content_id", "title", "sent", "failed", "delivered", "opened",
    "clicked", "dismissed", "conversions", "failure_rate", "open_rate", "click_rate",
    "click_through_rate", "dismiss_rate", "conversion_rate",
)  # fmt: skip


class CampaignStatsCsvView(WorkspaceScopedAPIView):
    """The same figures as /stats, one row per content and a `total` row, for spreadsheets."""

    api_key_scopes = {"GET": "analytics:read"}

    @extend_schema(
        summary="Download a campaign's stats as CSV",
        description="The figures of /stats as a CSV file for spreadsheets: one row per "
        "content, then a `total` row; counts and rates in columns. Members and above; "
        "another workspace's campaign: 404.",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, campaign_id):
        stats = selectors.campaign_stats(workspace=self.workspace, campaign_id=campaign_id)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in [*stats["contents"], {**stats["totals"], "position": "total"}]:
            writer.writerow(
                [
                    row["position"] if row["position"] is not None else "",
                    row.get("content_id") or "",
                    _spreadsheet_safe(row.get("title") or ""),
                    *(row[name] for name in CSV_COLUMNS[3:10]),
                    *("" if row["rates"][name] is None else row["rates"][name]
                      for name in CSV_COLUMNS[10:]),
                ]
            )  # fmt: skip
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="campaign-{stats["campaign_id"]}-stats.csv"'
        )
        return response


def _spreadsheet_safe(text: str) -> str:
    """Titles are user input: a leading = + - @ would run as a formula in a spreadsheet."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@extend_schema_view(
    list=extend_schema(
        summary="List campaigns with their stats",
        description="The dashboard's campaign table: the workspace's campaigns, newest "
        "first, each with its sent, failed, delivered, opened, clicked, dismissed and "
        "conversion counts and rates. Filter by `status`. Cached for a few seconds "
        "(ANALYTICS_CACHE_SECONDS). Members and above.",
        parameters=[OpenApiParameter("status", str, enum=CampaignStatus.values)],
    )
)
class CampaignAnalyticsViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    """The campaign list a dashboard shows: newest first, each with its sent / failed /
    delivered / opened / clicked / dismissed / conversion counts and rates."""

    api_key_scopes = {"GET": "analytics:read"}
    queryset = Campaign.objects.all()
    serializer_class = CampaignAnalyticsSerializer

    def refine_queryset(self, queryset):
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in CampaignStatus.values:
                raise ValidationFailed.on("status", f"One of {', '.join(CampaignStatus.values)}.")
            queryset = queryset.filter(status=wanted)
        return queryset.order_by("-created_at")

    def list(self, request):
        params = {"query": sorted(request.query_params.lists()), "host": request.get_host()}
        return Response(selectors.cached("campaigns", self.workspace.pk, params, self._page))

    def _page(self):
        page = self.paginate_queryset(self.get_queryset())
        counts = selectors.counts_for_campaigns(
            workspace=self.workspace, campaign_ids=[campaign.pk for campaign in page]
        )
        rows = [
            {"id": c.pk, "name": c.name, "status": c.status, "scheduled_at": c.scheduled_at,
             "last_run_at": c.last_run_at, "created_at": c.created_at, "stats": counts[c.pk]}
            for c in page
        ]  # fmt: skip
        data = CampaignAnalyticsSerializer(rows, many=True).data
        return self.get_paginated_response(data).data


class OverviewView(WorkspaceScopedAPIView):
    """Totals and a zero-filled series for the workspace, in local-time buckets."""

    api_key_scopes = {"GET": "analytics:read"}

    @extend_schema(
        summary="Get the workspace's analytics overview",
        description="Totals and a zero-filled time series of the workspace's sends and "
        "events between `from` and `to` (default: the last 24 hours by hour, or the last 7 "
        "days by day), in buckets of one `interval` (`hour` or `day`) in local time — the "
        "workspace's time zone or `timezone`; days follow the local calendar across DST "
        "changes. Cached for a few seconds (ANALYTICS_CACHE_SECONDS). Members and above.",
        parameters=[OverviewQuerySerializer],
        responses=OverviewSerializer,
    )
    def get(self, request):
        query = OverviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        window = selectors.overview_window(
            zone_name=data.get("timezone") or self.workspace.timezone,
            interval=data["interval"],
            start=data.get("from"),
            end=data.get("to"),
            now=timezone.now(),
        )
        body = selectors.overview(workspace=self.workspace, window=window)
        return Response(OverviewSerializer(body).data)
