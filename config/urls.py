from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from apps.common import ops
from apps.common.metrics import metrics_view
from apps.common.views import api_not_found, read_only
from apps.workspaces import audit_api

router = SimpleRouter(trailing_slash="")
router.register("audit-logs", audit_api.AuditLogViewSet, basename="audit-log")

api_v1 = [
    *router.urls,
    path("", include("apps.accounts.urls")),
    path("", include("apps.workspaces.urls")),
    path("", include("apps.integrations.firebase.urls")),
    path("", include("apps.ai.urls")),
    path("", include("apps.campaigns.urls")),
    path("", include("apps.notifications.urls")),
    path("", include("apps.analytics.urls")),
    path("", include("apps.devices.urls")),
    path("", include("apps.webhooks.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", read_only(ops.healthz), name="healthz"),
    path("readyz", read_only(ops.readyz), name="readyz"),
    path("metrics", read_only(metrics_view), name="metrics"),
    path("api/schema", read_only(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs", read_only(SpectacularSwaggerView.as_view(url_name="schema")), name="docs"),
    path("admin/", admin.site.urls),
    # Anything else under /api/ is a JSON 404 in the error contract, DEBUG or not.
    re_path(r"^api/", api_not_found),
]

handler400 = "apps.common.views.bad_request"
handler403 = "apps.common.views.permission_denied"
handler404 = "apps.common.views.not_found"
handler500 = "apps.common.views.server_error"
