from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.webhooks import api

router = SimpleRouter(trailing_slash="")
router.register("webhooks/endpoints", api.WebhookEndpointViewSet, basename="webhook-endpoint")

urlpatterns = [
    *router.urls,
    path(
        "webhooks/endpoints/<uuid:webhook_endpoint_id>/deliveries/<uuid:webhook_delivery_id>/redeliver",
        api.WebhookRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
]
