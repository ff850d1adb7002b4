"""Helpers for other apps' tests and the benchmarks: a delivery without the planner."""

from datetime import datetime

from apps.notifications.models import Delivery, Occurrence
from apps.notifications.planning import deliveries_for


def make_delivery(campaign, run_at: datetime, **fields) -> Delivery:
    """An occurrence of `campaign` at `run_at` (the last of its plan) and its delivery, as
    the planner makes them."""
    occurrence = Occurrence.objects.create(
        workspace_id=campaign.workspace_id,
        campaign=campaign,
        at=run_at,
        local=run_at.isoformat(),
        is_last=True,
    )
    [planned] = deliveries_for(campaign, occurrence, zones=[], now=run_at)
    delivery = planned.row(occurrence)
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.save()
    return delivery


def make_due_campaigns(workspace, count: int, *, at: datetime, contents: int = 1, topic="news"):
    """`count` scheduled one-off campaigns of `contents` contents, each with its occurrence
    and delivery at `at`, in a few bulk inserts (crash tests, benchmarks). Returns the
    deliveries."""
    from apps.campaigns.models import Campaign, CampaignContent
    from apps.campaigns.selectors import send_policy

    policy = send_policy(workspace.pk)  # read once, not by the planner for each campaign
    campaigns = Campaign.objects.bulk_create(
        [
            Campaign(workspace=workspace, name=f"c{i}", topic=topic, status="scheduled",
                     scheduled_at=at, scheduled_local=at.strftime("%Y-%m-%dT%H:%M:%S"),
                     next_run_at=at)
            for i in range(count)
        ],
        batch_size=2000,
    )  # fmt: skip
    for campaign in campaigns:
        campaign._send_policy = policy
    CampaignContent.objects.bulk_create(
        [
            CampaignContent(campaign=c, position=p, title=f"{c.name} #{p}", subtitle="body")
            for c in campaigns
            for p in range(contents)
        ],
        batch_size=2000,
    )
    occurrences = Occurrence.objects.bulk_create(
        [
            Occurrence(workspace=workspace, campaign=c, at=at, local=at.isoformat(), is_last=True)
            for c in campaigns
        ],
        batch_size=2000,
    )
    return Delivery.objects.bulk_create(
        [
            planned.row(occurrence)
            for campaign, occurrence in zip(campaigns, occurrences, strict=True)
            for planned in deliveries_for(campaign, occurrence, zones=[], now=at)
        ],
        batch_size=2000,
    )
