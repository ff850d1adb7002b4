from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.analytics import api

router = SimpleRouter(trailing_slash="")
router.register("ingest-keys", api.IngestKeyViewSet, basename="ingest-key")

urlpatterns = [
    *router.urls,
    # Not workspace-scoped: the ingest key names the workspace (see the tenancy allowlist).
    path("events", api.EventIngestView.as_view(), name="events-ingest"),
    path(
        "analytics/campaigns",
        api.CampaignAnalyticsViewSet.as_view({"get": "list"}),
        name="analytics-campaigns",
    ),
    path(
        "analytics/events",
        api.AnalyticsEventViewSet.as_view({"get": "list"}),
        name="analytics-events",
    ),
    path("analytics/overview", api.OverviewView.as_view(), name="analytics-overview"),
    path(
        "campaigns/<uuid:campaign_id>/stats",
        api.CampaignStatsView.as_view(),
        name="campaign-stats",
    ),
    path(
        "campaigns/<uuid:campaign_id>/stats.csv",
        api.CampaignStatsCsvView.as_view(),
        name="campaign-stats-csv",
    ),
]
