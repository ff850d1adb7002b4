"""Reads of the engine's tables that other apps and the API share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common.related import with_related_columns
from apps.devices import selectors as devices
from apps.notifications import planning
from apps.notifications.models import (
    WAITING_STATUSES,
    Delivery,
    DeliveryStatus,
    DispatcherHeartbeat,
    Notification,
    Occurrence,
    TopicSendLog,
    fcm_target,
)


@dataclass(frozen=True)
class DeliveryProgress:
    """Where a campaign's deliveries stand: what its status follows from."""

    running: int = 0
    waiting: int = 0  # pending or queued
    completed: int = 0
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    plan_complete: bool = False


def progress_of(campaign_ids) -> dict:
    """DeliveryProgress per campaign id (every id given gets one), in two queries."""
    rows = (
        Delivery.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(
            running=Count("pk", filter=Q(status=DeliveryStatus.RUNNING)),
            waiting=Count("pk", filter=Q(status__in=WAITING_STATUSES)),
            completed=Count("pk", filter=Q(status=DeliveryStatus.COMPLETED)),
            next_run_at=Min("run_at", filter=Q(status__in=WAITING_STATUSES)),
            last_run_at=Max(
                "run_at", filter=Q(status__in=(DeliveryStatus.COMPLETED, DeliveryStatus.FAILED))
            ),
        )
    )
    complete = set(
        Occurrence.objects.filter(campaign_id__in=campaign_ids, is_last=True).values_list(
            "campaign_id", flat=True
        )
    )
    found = {row.pop("campaign_id"): row for row in rows}
    return {
        pk: DeliveryProgress(**found.get(pk, {}), plan_complete=pk in complete)
        for pk in campaign_ids
    }


def deliveries_of(campaign_id) -> QuerySet[Delivery]:
    """The campaign's deliveries, latest run first, each with its occurrence's instant (the
    only column of the occurrence that the list shows)."""
    return with_related_columns(
        Delivery.objects.filter(campaign_id=campaign_id), occurrence_at="occurrence__at"
    ).order_by("-run_at", "slice")


def live_campaign_deliveries(workspace_id, campaign_id) -> QuerySet[Delivery]:
    """deliveries_of() the workspace's live campaign: none for a deleted campaign or another
    workspace's (one statement with the page it is read by: apps/common/compiled.CompiledPage)."""
    return deliveries_of(campaign_id).filter(
        Exists(campaign_selectors.campaigns_of(workspace_id, campaign_id))
    )


def live_campaign_notifications(workspace_id, campaign_id) -> QuerySet[Notification]:
    """The notifications of the workspace's live campaign: none for a deleted campaign or
    another workspace's."""
    return Notification.objects.filter(workspace_id=workspace_id, campaign_id=campaign_id).filter(
        Exists(campaign_selectors.campaigns_of(workspace_id, campaign_id))
    )


def last_heartbeat(host: str | None = None) -> datetime | None:
    """When a dispatcher (on `host` only, if given: names are "host:pid") last completed a
    round."""
    beats = DispatcherHeartbeat.objects.all()
    if host is not None:
        beats = beats.filter(name__startswith=f"{host}:")
    return beats.aggregate(last=Max("beat_at"))["last"]


MAX_PREVIEW_DELIVERIES = 500


@dataclass(frozen=True)
class PreviewedDelivery:
    occurrence_at: datetime
    occurrence_local: str
    slice: str
    zones: list[str]  # the recipients' zones it is for; empty: every zone, at one instant
    language: str  # whose copy it carries; "": the contents' own text, to everyone
    variant: str  # an experiment's content position, "winner", or "": every content
    topic: str
    condition: str
    run_at: datetime
    status: str  # the delivery's, or "unplanned" for one the planner has not made yet

    @property
    def target(self) -> dict[str, str]:
        return fcm_target(self.topic, self.condition)


def preview(campaign: Campaign, *, start: datetime, end: datetime, now: datetime) -> list:
    """Every delivery of the campaign with run_at in [start, end): those planned (as they
    are stored: what will be sent) and, for occurrences not planned yet, what the planner
    would make of them now (deliveries_for, today's zones). At most MAX_PREVIEW_DELIVERIES,
    by run_at."""
    planned = {}
    for delivery in (
        Delivery.objects.filter(campaign=campaign)
        .filter(run_at__gte=start, run_at__lt=end)
        .select_related("occurrence")
        .order_by("run_at", "slice")[:MAX_PREVIEW_DELIVERIES]
    ):
        planned[(delivery.occurrence.at, delivery.slice)] = _previewed(
            campaign, delivery.occurrence.at, delivery.occurrence.local, delivery
        )
    known = set(Occurrence.objects.filter(campaign=campaign).values_list("at", flat=True))
    schedule = campaign_selectors.schedule_of(campaign)
    if schedule is not None and campaign.status in (
        CampaignStatus.DRAFT,
        CampaignStatus.PENDING_APPROVAL,  # what the approver is asked to let go out
        *planning.ACTIVE_CAMPAIGN_STATUSES,
    ):
        zones, languages = planning.split_for(campaign)
        # Occurrences whose deliveries can fall in the range: zones spread them around.
        spread = planning.ZONE_SPREAD if campaign.recipient_time_zone else timedelta(0)
        policy = campaign_selectors.send_policy_of(campaign)
        if policy is not None and policy.has_quiet_hours:
            spread += planning.QUIET_SPREAD
        for item in schedule.occurrences(start - spread - timedelta(microseconds=1)):
            if item.utc >= end + spread or len(planned) >= MAX_PREVIEW_DELIVERIES:
                break
            if item.utc in known:
                continue
            occurrence = Occurrence(campaign=campaign, at=item.utc, local=item.local.isoformat())
            for delivery in planning.deliveries_for(
                campaign, occurrence, zones=zones, languages=languages, now=now
            ):
                if start <= delivery.run_at < end:
                    planned[(item.utc, delivery.slice)] = _previewed(
                        campaign, item.utc, occurrence.local, delivery,
                        status="unplanned" if not delivery.skipped else DeliveryStatus.SKIPPED,
                    )  # fmt: skip
    return sorted(planned.values(), key=lambda d: (d.run_at, d.slice))[:MAX_PREVIEW_DELIVERIES]


def _previewed(campaign, at, local, delivery, status=None) -> PreviewedDelivery:
    return PreviewedDelivery(
        occurrence_at=at, occurrence_local=local, slice=delivery.slice,
        zones=sorted(planning.zones_of(delivery)),
        topic=delivery.topic, condition=delivery.condition, run_at=delivery.run_at,
        status=status or delivery.status, language=delivery.language,
        variant=delivery.variant,
    )  # fmt: skip


def preview_body(campaign: Campaign, *, start: datetime, end: datetime, now: datetime) -> dict:
    """The preview of the campaign's deliveries in [start, end) as the API shows it: each
    with its local send time and its target's audience (one estimate per distinct target)."""
    planned = preview(campaign, start=start, end=end, now=now)
    audiences: dict[tuple, dict] = {}
    rows = []
    for item in planned:
        target = item.target
        key = tuple(target.items())
        if key not in audiences:
            audiences[key] = devices.audience_of(workspace_id=campaign.workspace_id, target=target)
        zone = ZoneInfo(item.zones[0] if item.zones else campaign.timezone)
        rows.append({
            "occurrence": item.occurrence_at, "occurrence_local": item.occurrence_local,
            "run_at": item.run_at, "run_at_local": item.run_at.astimezone(zone).isoformat(),
            "zones": item.zones, "language": item.language or None,
            "variant": item.variant or None, "target": target, "status": item.status,
            "audience_estimate": audiences[key],
        })  # fmt: skip
    return {"timezone": campaign.timezone, "deliveries": rows,
            "truncated": len(planned) >= MAX_PREVIEW_DELIVERIES}  # fmt: skip


def topic_sends(*, workspace_id, topic: str, start: datetime, end: datetime, campaign_ids) -> dict:
    """For the frequency cap: the sends to `topic` with their instants in [start, end], as
    (instant, occurrence id) — "sent" (recorded by the engine) and "planned" (occurrences of
    `campaign_ids` with a delivery still to send)."""
    log = TopicSendLog.objects.filter(workspace_id=workspace_id, topic=topic).first()
    sent = []
    for occurrence_id, at in log.sends if log else []:
        instant = datetime.fromisoformat(at)
        if start <= instant <= end:
            sent.append((instant, occurrence_id))
    waiting = Delivery.objects.filter(occurrence=OuterRef("pk"), status__in=WAITING_STATUSES)
    planned = [
        (at, str(pk))
        for pk, at in Occurrence.objects.filter(
            campaign_id__in=campaign_ids, at__gte=start, at__lte=end
        )
        .filter(Exists(waiting))
        .values_list("pk", "at")
    ]
    return {"sent": sent, "planned": planned}
