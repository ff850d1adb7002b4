"""When a campaign sends: its schedule validated and stored, and the moves between draft,
pending_approval (send policies' approvals), scheduled and cancelled, with the plan of
deliveries (apps.notifications.planning) and the workspace's frequency cap over it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.campaigns import policies, recurrence, selectors
from apps.campaigns.errors import InvalidTransition
from apps.campaigns.models import DELIVERY_OPTION_FIELDS as OPTION_FIELDS
from apps.campaigns.models import Campaign, CampaignStatus, QuietHoursMode
from apps.campaigns.selectors import lock_campaign
from apps.campaigns.services import policies as policy_services
from apps.campaigns.services.messages import (
    content_values,
    validate_contents,
    validate_experiment,
)
from apps.campaigns.services.sending import settle
from apps.campaigns.state_machine import allowed_transitions, can_transition, transition
from apps.common import audit
from apps.common.actors import user_or_none
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
    (fields and size), the schedule (valid, bounded, first run in the future), then the
    workspace's frequency cap (409) — or draft -> pending_approval, with the schedule
    stored, when its audience is over the workspace's approval threshold and the actor is
    not an admin (an admin's schedule is its own approval)."""
    campaign = lock_campaign(campaign.pk)
    if campaign.status != CampaignStatus.DRAFT:
        raise InvalidTransition(
            campaign.status, CampaignStatus.SCHEDULED, allowed_transitions(campaign.status)
        )
    now = now or timezone.now()
    fields, schedule, first = _checked_schedule(
        campaign, scheduled_at=scheduled_at, timezone_name=timezone_name, rrule=rrule,
        exclusion_dates=exclusion_dates, now=now,
    )  # fmt: skip
    over = policy_services.needs_approval(campaign)
    if over is not None and not policy_services.is_admin(actor, campaign.workspace):
        transition(
            campaign,
            CampaignStatus.PENDING_APPROVAL,
            actor=actor,
            reason="approval requested",
            fields={**fields, "approval_requested_by": user_or_none(actor),
                    "approval_requested_at": now, "approved_by": None, "approved_at": None,
                    "rejection_reason": ""},
        )  # fmt: skip
        audit.record("campaign.approval_requested", actor=actor, workspace=campaign.workspace,
                     target=campaign, metadata={**over, "first_run_at": first.utc.isoformat(),
                                                "rrule": fields["rrule"]})  # fmt: skip
        logger.info("campaign_approval_requested", campaign_id=str(campaign.pk), **over)
        return campaign
    if over is not None:  # an admin scheduled it: recorded as approved by them
        fields.update(approved_by=user_or_none(actor), approved_at=now, rejection_reason="")
    return _enter_scheduled(campaign, actor, fields, schedule, first, now, reason="schedule")


@transaction.atomic
def approve_campaign(*, campaign: Campaign, actor, now: datetime | None = None) -> Campaign:
    """pending_approval -> scheduled with the schedule kept when approval was requested,
    checked again as /schedule checks it (a first run now in the past is a 400). Admins
    only (the view requires the role)."""
    campaign = lock_campaign(campaign.pk)
    if campaign.status != CampaignStatus.PENDING_APPROVAL:
        raise InvalidTransition(
            campaign.status, CampaignStatus.SCHEDULED, allowed_transitions(campaign.status)
        )
    now = now or timezone.now()
    fields, schedule, first = _checked_schedule(campaign, now=now)
    fields.update(approved_by=user_or_none(actor), approved_at=now, rejection_reason="")
    _enter_scheduled(campaign, actor, fields, schedule, first, now, reason="approved")
    audit.record("campaign.approved", actor=actor, workspace=campaign.workspace, target=campaign,
                 metadata={"requested_by": str(campaign.approval_requested_by_id or ""),
                           "first_run_at": first.utc.isoformat()})  # fmt: skip
    return campaign


@transaction.atomic
def reject_campaign(*, campaign: Campaign, actor, reason: str = "") -> Campaign:
    """pending_approval -> draft, with the reason kept on the campaign for its author."""
    campaign = lock_campaign(campaign.pk)
    if campaign.status != CampaignStatus.PENDING_APPROVAL:
        raise InvalidTransition(
            campaign.status, CampaignStatus.DRAFT, allowed_transitions(campaign.status)
        )
    transition(
        campaign,
        CampaignStatus.DRAFT,
        actor=actor,
        reason="rejected",
        fields={"rejection_reason": reason, "approved_by": None, "approved_at": None},
    )
    audit.record("campaign.rejected", actor=actor, workspace=campaign.workspace, target=campaign,
                 metadata={"reason": reason,
                           "requested_by": str(campaign.approval_requested_by_id or "")})  # fmt: skip
    return campaign


def _checked_schedule(
    campaign: Campaign,
    *,
    scheduled_at: datetime | None = _UNSET,
    timezone_name: str | None = None,
    rrule: str | None = None,
    exclusion_dates: Iterable | None = None,
    now: datetime,
):
    """(fields, schedule, first occurrence) of a schedule that may start: Firebase
    connected, the contents, the schedule and the experiment checked (see schedule_campaign)."""
    if not firebase_is_connected(campaign.workspace):
        raise FirebaseNotConnected()
    contents = [content_values(content) for content in campaign.contents.order_by("position")]
    if not contents:
        raise ValidationFailed.on("contents", "Add at least one content before scheduling.")
    options = {name: getattr(campaign, name) for name in OPTION_FIELDS}
    quiet = policies.quiet_rule(campaign, selectors.send_policy_of(campaign))
    validate_contents(
        contents, topic=campaign.topic, condition=campaign.condition, options=options,
        # Quiet hours in each recipient's zone narrow deliveries by zone too: sizes are
        # checked with the longest condition they can make.
        recipient_time_zone=campaign.recipient_time_zone
        or (quiet is not None and quiet.mode == QuietHoursMode.RECIPIENT),
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
        if recurrence.to_utc(schedule.start_local, schedule.zone) <= now:
            # Even for a rule with later occurrences: a past start is a mistake to report,
            # not something to silently move.
            raise recurrence.RuleInvalid(
                "scheduled_at", "The scheduled time must be in the future."
            )
        first = recurrence.first_occurrence_after(schedule, now)
    except recurrence.RuleInvalid as exc:
        raise ValidationFailed.on(exc.field, exc.message) from None
    return fields, schedule, first


def _enter_scheduled(campaign, actor, fields, schedule, first, now, *, reason) -> Campaign:
    fields["next_run_at"] = first.utc
    transition(
        campaign,
        CampaignStatus.SCHEDULED,
        actor=actor,
        reason=reason,
        fields=fields,
        metadata={"first_run_at": first.utc.isoformat(), "rrule": fields["rrule"]},
    )
    planning.plan(campaign, now=now)
    # The workspace's frequency cap, over the plan (a refusal rolls the schedule back).
    policy_services.check_frequency_cap(campaign, schedule, first=first.utc)
    # The next run is the plan's earliest unsent delivery, which may not be `first`: quiet
    # hours may have moved or skipped it, and a rescheduled recurring campaign's occurrences
    # sent before are not planned again.
    settle([campaign.pk], now=now)
    campaign.refresh_from_db(fields=["status", "next_run_at", "last_run_at", "updated_at"])
    logger.info("campaign_scheduled", campaign_id=str(campaign.pk), run_at=first.utc.isoformat())
    return campaign


@transaction.atomic
def unschedule_campaign(*, campaign: Campaign, actor) -> Campaign:
    """scheduled -> draft so it can be edited. The unsent plan is withdrawn in the same
    transaction (a delivery already claimed by a dispatcher then finds nothing to start).
    Also pending_approval -> draft: the request withdrawn (nothing was planned)."""
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
    """draft|pending_approval|scheduled -> cancelled; every unsent delivery is cancelled in
    the same transaction."""
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
    stoppable = (CampaignStatus.DRAFT, CampaignStatus.PENDING_APPROVAL, CampaignStatus.SCHEDULED,
                 CampaignStatus.RUNNING)  # fmt: skip
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
