"""When a campaign sends: its schedule validated and stored, and the moves between draft,
scheduled and cancelled, with the plan of deliveries (apps.notifications.planning)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.campaigns import recurrence
from apps.campaigns.errors import InvalidTransition
from apps.campaigns.models import DELIVERY_OPTION_FIELDS as OPTION_FIELDS
from apps.campaigns.models import Campaign, CampaignStatus
from apps.campaigns.selectors import lock_campaign
from apps.campaigns.services.messages import (
    content_values,
    validate_contents,
    validate_experiment,
)
from apps.campaigns.state_machine import allowed_transitions, can_transition, transition
from apps.common.errors import ValidationFailed
from apps.common.logging import get_logger
from apps.integrations.firebase.errors import FirebaseNotConnected
from apps.integrations.firebase.selectors import firebase_is_connected
from apps.notifications import planning

logger = get_logger("pushpilot.campaigns")

# Fields that change what is sent or when: editable only while the campaign is a draft.
SCHEDULE_FIELDS = frozenset({"scheduled_at", "timezone", "rrule", "exclusion_dates"})


def schedule_fields(
    *,
    start: datetime | None,
    timezone_name: str,
    rrule: str,
    exclusion_dates: Iterable,
) -> dict[str, Any]:
    """Validate the schedule inputs (syntax and bounds, not "in the future") and return the
    model fields they set."""
    try:
        zone = recurrence.zone_for(timezone_name)
        rule = recurrence.parse_rule(rrule) if rrule else None
        dates = recurrence.parse_exclusion_dates(exclusion_dates)
        fields: dict[str, Any] = {
            "timezone": timezone_name,
            "rrule": rule.text if rule else "",
            "exclusion_dates": sorted(day.isoformat() for day in dates),
            "scheduled_at": None,
            "scheduled_local": "",
        }
        # An impossible rule is refused now, from its anchor (or from now, without one).
        schedule = recurrence.build_schedule(
            start=start if start is not None else timezone.now(),
            timezone_name=timezone_name,
            rrule=rrule or None,
            exclusion_dates=dates,
        )
        recurrence.ensure_possible(schedule)
        if start is not None:
            fields["scheduled_local"] = schedule.start_local.isoformat()
            fields["scheduled_at"] = recurrence.to_utc(schedule.start_local, zone)
    except recurrence.RuleInvalid as exc:
        raise ValidationFailed.on(exc.field, exc.message) from None
    return fields


def stored_start(campaign: Campaign) -> datetime | None:
    return datetime.fromisoformat(campaign.scheduled_local) if campaign.scheduled_local else None


_UNSET: Any = object()


@transaction.atomic
def schedule_campaign(
    *,
    campaign: Campaign,
    actor,
    scheduled_at: datetime | None = _UNSET,
    timezone_name: str | None = None,
    rrule: str | None = None,
    exclusion_dates: Iterable | None = None,
    now: datetime | None = None,
) -> Campaign:
    """draft -> scheduled, with its first occurrences planned, after checking in this order:
    the state, Firebase connected (409), at least one content, each content's FCM message
    (fields and size), the schedule (valid, bounded, first run in the future)."""
    campaign = lock_campaign(campaign.pk)
    if not can_transition(campaign.status, CampaignStatus.SCHEDULED):
        raise InvalidTransition(
            campaign.status, CampaignStatus.SCHEDULED, allowed_transitions(campaign.status)
        )
    if not firebase_is_connected(campaign.workspace):
        raise FirebaseNotConnected()
    contents = [content_values(content) for content in campaign.contents.order_by("position")]
    if not contents:
        raise ValidationFailed.on("contents", "Add at least one content before scheduling.")
    options = {name: getattr(campaign, name) for name in OPTION_FIELDS}
    validate_contents(
        contents, topic=campaign.topic, condition=campaign.condition, options=options,
        recipient_time_zone=campaign.recipient_time_zone,
        languages=campaign.workspace.languages,
        default_language=campaign.workspace.default_language,
    )  # fmt: skip

    start = stored_start(campaign) if scheduled_at is _UNSET else scheduled_at
    if start is None:
        raise ValidationFailed.on("scheduled_at", "Give the time of the first run.")
    fields = schedule_fields(
        start=start,
        timezone_name=timezone_name or campaign.timezone,
        rrule=campaign.rrule if rrule is None else rrule,
        exclusion_dates=campaign.exclusion_dates if exclusion_dates is None else exclusion_dates,
    )
    validate_experiment(
        campaign.experiment, contents=contents, topic=campaign.topic,
        condition=campaign.condition, rrule=fields["rrule"] or "",
        recipient_time_zone=campaign.recipient_time_zone,
    )  # fmt: skip
    try:
        schedule = recurrence.build_schedule(
            start=datetime.fromisoformat(fields["scheduled_local"]),
            timezone_name=fields["timezone"],
            rrule=fields["rrule"] or None,
            exclusion_dates=fields["exclusion_dates"],
        )
        now = now or timezone.now()
        if recurrence.to_utc(schedule.start_local, schedule.zone) <= now:
            # Even for a rule with later occurrences: a past start is a mistake to report,
            # not something to silently move.
            raise recurrence.RuleInvalid(
                "scheduled_at", "The scheduled time must be in the future."
            )
        first = recurrence.first_occurrence_after(schedule, now)
    except recurrence.RuleInvalid as exc:
        raise ValidationFailed.on(exc.field, exc.message) from None

    fields["next_run_at"] = first.utc
    transition(
        campaign,
        CampaignStatus.SCHEDULED,
        actor=actor,
        reason="schedule",
        fields=fields,
        metadata={"first_run_at": first.utc.isoformat(), "rrule": fields["rrule"]},
    )
    planning.plan(campaign, now=now)
    logger.info("campaign_scheduled", campaign_id=str(campaign.pk), run_at=first.utc.isoformat())
    return campaign


@transaction.atomic
def unschedule_campaign(*, campaign: Campaign, actor) -> Campaign:
    """scheduled -> draft so it can be edited. The unsent plan is withdrawn in the same
    transaction (a delivery already claimed by a dispatcher then finds nothing to start)."""
    campaign = lock_campaign(campaign.pk)
    transition(
        campaign,
        CampaignStatus.DRAFT,
        actor=actor,
        reason="unschedule",
        fields={"next_run_at": None},
    )
    planning.drop_unstarted(campaign)
    return campaign


@transaction.atomic
def cancel_campaign(*, campaign: Campaign, actor) -> Campaign:
    """draft|scheduled -> cancelled; every unsent delivery is cancelled in the same
    transaction."""
    now = timezone.now()
    campaign = lock_campaign(campaign.pk)
    transition(
        campaign,
        CampaignStatus.CANCELLED,
        actor=actor,
        reason="cancel",
        fields={"next_run_at": None},
    )
    cancelled = planning.cancel_unstarted(campaign, now=now)
    logger.info("campaign_cancelled", campaign_id=str(campaign.pk), deliveries_cancelled=cancelled)
    return campaign


@transaction.atomic
def stop_workspace_campaigns(*, workspace, actor) -> int:
    """The workspace is being deleted: nothing more of it is sent. Its draft and scheduled
    campaigns are cancelled; every delivery not yet started, a running campaign's too, is
    cancelled (a send already under way finishes; the engine starts none for a deleted
    workspace). Returns the number of deliveries cancelled."""
    now = timezone.now()
    cancelled = 0
    stoppable = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING)
    rows = Campaign.objects.select_for_update().filter(workspace=workspace, status__in=stoppable)
    for campaign in rows.order_by("pk"):
        if can_transition(campaign.status, CampaignStatus.CANCELLED):
            transition(
                campaign,
                CampaignStatus.CANCELLED,
                actor=actor,
                reason="workspace deleted",
                fields={"next_run_at": None},
            )
        cancelled += planning.cancel_unstarted(campaign, now=now)
    return cancelled
