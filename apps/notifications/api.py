from rest_framework import mixins

from apps.campaigns.models import Campaign
from apps.common.errors import NotFound
from apps.common.tenancy import WorkspaceScopedViewSet
from apps.notifications.filters import NotificationFilter
from apps.notifications.models import Notification
from apps.notifications.serializers import NotificationSerializer


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """What was sent: one row per content per run, newest first."""

    queryset = Notification.objects.all()
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    lookup_url_kwarg = "notification_id"

    def refine_queryset(self, queryset):
        return queryset.order_by("-created_at", "position")


class CampaignNotificationViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    """The notifications of one campaign (404 for a campaign of another workspace)."""

    queryset = Notification.objects.all()
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter

    def refine_queryset(self, queryset):
        campaign_id = self.kwargs["campaign_id"]
        if not Campaign.objects.filter(pk=campaign_id, workspace=self.workspace).exists():
            raise NotFound("No such campaign.")
        return queryset.filter(campaign_id=campaign_id).order_by("-created_at", "position")
