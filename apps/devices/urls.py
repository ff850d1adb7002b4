from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.devices import api

router = SimpleRouter(trailing_slash="")
router.register("audience/devices", api.AudienceDeviceViewSet, basename="audience-device")

urlpatterns = [
    *router.urls,
    # Not workspace-scoped: the ingest key names the workspace (see the tenancy allowlist).
    path("devices", api.DeviceRegisterView.as_view(), name="device-register"),
    path("devices/batch", api.DeviceBatchView.as_view(), name="device-batch"),
    path("devices/<str:device_token>", api.DeviceTokenView.as_view(), name="device-token"),
    path("audience/topics", api.AudienceTopicsView.as_view(), name="audience-topics"),
    path("audience/estimate", api.AudienceEstimateView.as_view(), name="audience-estimate"),
]
