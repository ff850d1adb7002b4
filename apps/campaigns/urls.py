from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.campaigns.api import CampaignViewSet
from apps.campaigns.policy_api import SendPolicyView

router = SimpleRouter(trailing_slash="")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = [
    path("send-policy", SendPolicyView.as_view(), name="send-policy"),
    *router.urls,
]
