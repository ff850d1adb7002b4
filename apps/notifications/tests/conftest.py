from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign
from apps.notifications.dispatcher import claim_due
from apps.notifications.models import FINISHED_STATUSES, Delivery


@pytest.fixture(autouse=True)
def _no_lookahead(settings):
    """These tests claim "as if it were" a later time, with workers on the real clock: no
    send is held for a delivery claimed ahead (test_dispatch_lookahead tests the hold)."""
    settings.DISPATCH_LOOKAHEAD_SECONDS = 0


def only_delivery(campaign) -> Delivery:
    return Delivery.objects.filter(campaign=campaign).earliest("run_at")


def _claiming(capture, *, execute: bool):
    def _claim(at: datetime, **options) -> list:
        with capture(execute=execute):
            return claim_due(now=at, **options)

    return _claim


@pytest.fixture
def run_due(django_capture_on_commit_callbacks):
    """Claim what is due at `at` and run the published batches (eager), in-process."""
    return _claiming(django_capture_on_commit_callbacks, execute=True)


@pytest.fixture
def claim_only(django_capture_on_commit_callbacks):
    """Claim what is due at `at` without publishing: as if its messages were lost."""
    return _claiming(django_capture_on_commit_callbacks, execute=False)


@pytest.fixture
def run_until_settled(run_due):
    """Run a delivery's claims, each when it is next due, until it is finished."""

    def _run(delivery: Delivery, rounds: int = 20) -> None:
        for _ in range(rounds):
            delivery.refresh_from_db()
            if delivery.status in FINISHED_STATUSES:
                return
            run_due(max(delivery.due_at, delivery.run_at))
        raise AssertionError(f"still {delivery.status} after {rounds} rounds")

    return _run


@pytest.fixture
def scheduled(connected_workspace, owner):
    """Create and schedule a campaign; returns (campaign, its first delivery)."""

    def _make(contents=2, at=None, **fields):
        start = at or (timezone.now() + timedelta(minutes=5)).replace(microsecond=0)
        campaign = campaigns.create_campaign(
            workspace=connected_workspace,
            actor=owner,
            name="Launch",
            topic=fields.pop("topic", "news"),
            contents=[{"title": f"Title {i}", "subtitle": f"Body {i}"} for i in range(contents)],
            **fields,
        )
        campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=start)
        return Campaign.objects.get(pk=campaign.pk), only_delivery(campaign)

    return _make
