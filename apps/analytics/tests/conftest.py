from datetime import timedelta

import pytest
from django.utils import timezone

from apps.campaigns.services import create_campaign
from apps.notifications.models import Notification
from apps.notifications.testing import make_delivery


@pytest.fixture
def make_sent_campaign(owner):
    """A campaign with `contents` contents and one run whose notifications exist (pending)."""

    def _make(workspace, contents=2, name="Launch", actor=None):
        campaign = create_campaign(
            workspace=workspace,
            actor=actor or owner,
            name=name,
            topic="news",
            contents=[{"title": f"Title {i}", "subtitle": f"Body {i}"} for i in range(contents)],
        )
        delivery = make_delivery(campaign, timezone.now() - timedelta(hours=1))
        notifications = [
            Notification.objects.create(
                workspace=workspace, campaign=campaign, delivery=delivery, content=content,
                position=content.position, title=content.title,
            )
            for content in campaign.contents.order_by("position")
        ]  # fmt: skip
        return campaign, notifications

    return _make
