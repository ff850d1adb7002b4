"""For the sending engine (apps.notifications): campaigns locked for a batch, moved to
running, and settled from their deliveries. Each function takes campaign ids, locks their
rows in id order (two batches that share campaigns queue instead of deadlocking) and writes
set-based."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from apps.analytics import selectors as analytics
from apps.campaigns import experiments
from apps.campaigns.models import Campaign, CampaignStatus
from apps.campaigns.state_machine import transition_many
from apps.common import audit
from apps.notifications import selectors as notification_selectors
from apps.webhooks import services as webhooks

ENGINE_REASONS = {
    CampaignStatus.RUNNING: "run started",
    CampaignStatus.SCHEDULED: "next occurrence",
    CampaignStatus.COMPLETED: "run finished",
    CampaignStatus.FAILED: "run failed",
}


def lock_for_sending(campaign_ids) -> dict:
    """The campaigns (deleted ones too), row-locked for the caller's transaction, by id.
    `campaign_ids`: ids, or a queryset of them (locked in the same statement)."""
    ids = campaign_ids if isinstance(campaign_ids, QuerySet) else set(campaign_ids)
    rows = (
        Campaign.all_objects.select_for_update(of=("self",))
        # The workspace's send policies come along (a left join): the engine checks the
        # frequency cap without a query per batch for workspaces that have none.
        .select_related("workspace", "workspace__send_policy")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    return {campaign.pk: campaign for campaign in rows}


def is_active(campaign: Campaign) -> bool:
    """Scheduled or running, and not deleted: its status follows its deliveries."""
    return not campaign.is_deleted and campaign.status in (
        CampaignStatus.SCHEDULED,
        CampaignStatus.RUNNING,
    )


def is_sendable(campaign: Campaign) -> bool:
    """Active, in a workspace that still exists (`campaign.workspace` loaded, as
    lock_for_sending does)."""
    return is_active(campaign) and not campaign.workspace.is_deleted


def reason_not_sendable(campaign: Campaign) -> str:
    if campaign.workspace.is_deleted:
        return "The workspace is deleted."
    return f"The campaign is {'deleted' if campaign.is_deleted else campaign.status}."


def mark_running(campaigns: Iterable[Campaign], *, now: datetime) -> None:
    """scheduled -> running for campaigns (locked by the caller) whose delivery started."""
    starting = [c for c in campaigns if c.status == CampaignStatus.SCHEDULED]
    transition_many(
        starting, CampaignStatus.RUNNING, reason=ENGINE_REASONS[CampaignStatus.RUNNING], now=now
    )


def settle(campaign_ids, *, now: datetime) -> None:
    """After deliveries of these campaigns changed state, each active campaign's status and
    run times follow from its deliveries (README, "States"):

    * a delivery running -> running;
    * else a delivery waiting, or the plan not complete -> scheduled;
    * else (everything ran): a recurring campaign completed; a one-off one completed if its
      delivery completed, failed otherwise (every send refused, or the run missed).
    """
    campaigns = [c for c in lock_for_sending(campaign_ids).values() if is_active(c)]
    progress = notification_selectors.progress_of([c.pk for c in campaigns])
    moves: dict[tuple[str, str], list[Campaign]] = {}
    retimed = []
    for campaign in campaigns:
        state = progress[campaign.pk]
        if state.running:
            target = CampaignStatus.RUNNING
        elif state.waiting or not state.plan_complete:
            target = CampaignStatus.SCHEDULED
        elif campaign.rrule or state.completed:
            target = CampaignStatus.COMPLETED
        else:
            target = CampaignStatus.FAILED
        times = (state.next_run_at, state.last_run_at or campaign.last_run_at)
        if times != (campaign.next_run_at, campaign.last_run_at):
            campaign.next_run_at, campaign.last_run_at = times
            retimed.append(campaign)
        if target != campaign.status:
            moves.setdefault((campaign.status, target), []).append(campaign)
    if retimed:
        Campaign.all_objects.bulk_update(retimed, ["next_run_at", "last_run_at"])
    for (_, target), group in moves.items():
        transition_many(group, target, reason=ENGINE_REASONS[target], now=now)


def experiment_winner(campaign: Campaign, *, now: datetime | None = None) -> int:
    """The position of the content the rest of the audience gets: decided once, when the
    first winner delivery starts (after the test window), from the variants' delivered and
    metric counts; recorded on the campaign and audited. The caller holds the campaign's row
    lock (the engine does while it starts a batch)."""
    if campaign.experiment_result is not None:
        return campaign.experiment_result["winner"]
    config = campaign.experiment
    counts = analytics.counts_by_content(campaign)
    contents = list(campaign.contents.order_by("position").values_list("pk", flat=True))
    samples = [
        (counts.get(pk, {}).get(config["metric"], 0), counts.get(pk, {}).get("delivered", 0))
        for pk in contents
    ]
    result = experiments.decide(
        samples, fallback=config["fallback"], min_sample=config["min_sample"]
    )
    result.update(metric=config["metric"], decided_at=(now or timezone.now()).isoformat())
    decided = Campaign.all_objects.filter(pk=campaign.pk, experiment_result__isnull=True).update(
        experiment_result=result, updated_at=timezone.now()
    )
    if decided:
        campaign.experiment_result = result
        audit.record("campaign.experiment_decided", actor=None, workspace=campaign.workspace,
                     target=campaign, metadata=result)  # fmt: skip
        webhooks.experiment_decided(campaign, result)
    else:
        campaign.refresh_from_db(fields=["experiment_result"])
    return campaign.experiment_result["winner"]
