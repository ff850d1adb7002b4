from django.urls import path

from apps.notifications import api

urlpatterns = [
    path(
        "notifications",
        api.NotificationViewSet.as_view({"get": "list"}),
        name="notification-list",
    ),
    path(
        "notifications/<uuid:notification_id>",
        api.NotificationViewSet.as_view({"get": "retrieve"}),
        name="notification-detail",
    ),
    path(
        "campaigns/<uuid:campaign_id>/notifications",
        api.CampaignNotificationViewSet.as_view({"get": "list"}),
        name="campaign-notifications",
    ),
]
