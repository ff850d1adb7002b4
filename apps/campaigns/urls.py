from rest_framework.routers import SimpleRouter

from apps.campaigns.api import CampaignViewSet

router = SimpleRouter(trailing_slash="")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = router.urls
