"""Racing requests on one campaign (PostgreSQL: real row locks and concurrent sessions)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common.errors import ApplicationError
from apps.common.testing import race
from apps.notifications.models import Delivery, DeliveryStatus

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("attempt", range(3))
def test_schedule_racing_cancel_never_leaves_a_pending_delivery(connected, owner, attempt):
    start = timezone.now() + timedelta(days=1)
    campaign = services.create_campaign(
        workspace=connected, actor=owner, name="race", topic="news",
        contents=[{"title": "t"}], scheduled_at=start,
    )  # fmt: skip
    race(
        lambda: services.schedule_campaign(campaign=campaign, actor=owner),
        lambda: services.cancel_campaign(campaign=campaign, actor=owner),
    )
    final = Campaign.objects.get(pk=campaign.pk)
    assert final.status == CampaignStatus.CANCELLED  # cancel wins before or after schedule
    assert not Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.PENDING).exists()


def test_two_schedules_make_one_delivery(connected, owner):
    campaign = services.create_campaign(
        workspace=connected, actor=owner, name="race", topic="news",
        contents=[{"title": "t"}], scheduled_at=timezone.now() + timedelta(days=1),
    )  # fmt: skip
    outcomes = race(
        lambda: services.schedule_campaign(campaign=campaign, actor=owner),
        lambda: services.schedule_campaign(campaign=campaign, actor=owner),
    )
    assert sum(isinstance(outcome, ApplicationError) for outcome in outcomes) == 1
    assert Delivery.objects.filter(campaign=campaign).count() == 1
