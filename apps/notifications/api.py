from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns.models import Campaign
from apps.common.compiled import CompiledPage
from apps.common.errors import NotFound
from apps.common.pagination import CursorPagination
from apps.notifications import selectors
from apps.notifications.filters import NotificationFilter
from apps.notifications.models import Notification
from apps.notifications.serializers import NotificationSerializer
from apps.workspaces.models import Workspace
from apps.workspaces.tenancy import CompiledWorkspaceListMixin, WorkspaceScopedViewSet

# A page without filters: the campaign's check and the page in one statement, compiled once
# per connection and page shape.
_campaign_notifications_page = CompiledPage(
    selectors.live_campaign_notifications,
    workspace_id=Workspace._meta.pk,
    campaign_id=Campaign._meta.pk,
)


@extend_schema_view(
    list=extend_schema(
        summary="List sent notifications",
        description="What was handed to FCM across the workspace: one notification per "
        "content per delivery, newest first, with its title and body, status (pending, "
        "sending, sent, failed), FCM message id or error, and send time. Filter by "
        "`campaign`, `delivery`, `status` (several allowed) and send time (`sent_from`, "
        "`sent_to`). Members and above.",
    ),
    retrieve=extend_schema(
        summary="Get a notification",
        description="One notification of the workspace: the content as sent, its campaign "
        "and delivery, FCM's message id or the error that failed it. Members and above.",
    ),
)
class NotificationViewSet(
    CompiledWorkspaceListMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    WorkspaceScopedViewSet,
):
    """What was sent: one row per content per run, newest first."""

    api_key_scopes = {"GET": "campaigns:read"}
    queryset = Notification.objects.all()
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    pagination_class = CursorPagination
    lookup_url_kwarg = "notification_id"

    def refine_queryset(self, queryset):
        return queryset  # newest first: CursorPagination orders by (created_at, id)


@extend_schema_view(
    list=extend_schema(
        summary="List a campaign's notifications",
        description="The notifications of one campaign, newest first, with the same filters "
        "as /notifications. A campaign of another workspace, or none: 404. Members and "
        "above.",
    )
)
class CampaignNotificationViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    """The notifications of one campaign (404 for a campaign of another workspace)."""

    api_key_scopes = {"GET": "campaigns:read"}
    queryset = Notification.objects.all()
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    pagination_class = CursorPagination
    # Tens of rows a day: a page spans days (partitions.windows).
    cursor_sparse = True

    def list(self, request, *args, **kwargs):
        page = self.paginator.compiled_page(
            request,
            self,
            _campaign_notifications_page,
            workspace_id=self.workspace.pk,
            campaign_id=self.kwargs["campaign_id"],
        )
        if page is None:
            return super().list(request, *args, **kwargs)
        if not page:
            self._live_campaign_id()  # none sent yet, or no such campaign
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def refine_queryset(self, queryset):
        return queryset.filter(campaign_id=self._live_campaign_id()).order_by("-created_at", "-id")

    def _live_campaign_id(self):
        campaign_id = campaign_selectors.live_campaign_id(
            self.workspace, self.kwargs["campaign_id"]
        )
        if campaign_id is None:
            raise NotFound("No such campaign.")
        return campaign_id
