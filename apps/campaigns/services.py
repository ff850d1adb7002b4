"""Every write to campaigns and their contents, with the rules; the plan of deliveries is
written by apps.notifications.planning, called from here.

Inputs arrive type-checked (serializers); the business rules live here: FCM target and
content rules (from apps.integrations.firebase, never copied), what may be edited in which
state, and the schedule (apps.campaigns.recurrence). Status changes go through
apps.campaigns.state_machine.transition only.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.campaigns import recurrence, selectors
from apps.campaigns.errors import CampaignActive, CampaignLocked, InvalidTransition
from apps.campaigns.metrics import campaign_created_total
from apps.campaigns.models import DELIVERY_OPTION_FIELDS as OPTION_FIELDS
from apps.campaigns.models import Campaign, CampaignContent, CampaignStatus
from apps.campaigns.state_machine import (
    allowed_transitions,
    can_transition,
    transition,
    transition_many,
)
from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import NotFound, ValidationFailed
from apps.common.logging import get_logger
from apps.integrations.firebase import validation as fcm
from apps.integrations.firebase.errors import FirebaseNotConnected
from apps.integrations.firebase.messages import DeliveryOptions, PushContent, build_message
from apps.integrations.firebase.selectors import firebase_is_connected
from apps.notifications import planning
from apps.notifications import selectors as notification_selectors

logger = get_logger("pushpilot.campaigns")

MAX_CONTENTS = 20
# Fields that change what is sent or when: editable only while the campaign is a draft.
SCHEDULE_FIELDS = frozenset({"scheduled_at", "timezone", "rrule", "exclusion_dates"})
LOCKED_FIELDS = frozenset({"topic", "condition", "contents", *OPTION_FIELDS, *SCHEDULE_FIELDS})
# Name, description and the catch-up policy (it only governs future runs) change any time.
FREE_FIELDS = frozenset({"name", "description", "catch_up_window_seconds"})
DEFAULT_CATCH_UP_WINDOW_SECONDS = 3600
NULLABLE_OPTIONS = frozenset({"ttl_seconds", "badge"})
CONTENT_FIELDS = ("title", "subtitle", "image_url", "data", "link", "analytics_label")


# --- validation helpers -----------------------------------------------------------------------
def _validate_target(topic: str, condition: str) -> tuple[str, str]:
    topic, condition = (topic or "").strip(), (condition or "").strip()
    if bool(topic) == bool(condition):
        raise ValidationFailed.on("target", "Give exactly one of 'topic' or 'condition'.")
    try:
        if topic:
            fcm.validate_topic(topic)
        else:
            fcm.validate_condition(condition)
    except fcm.MessageInvalid as exc:
        raise ValidationFailed(details={"target": [exc.message]}) from None
    return topic, condition


def _validate_options(options: Mapping[str, Any]) -> None:
    if options.get("ttl_seconds") is not None:
        try:
            fcm.validate_ttl(options["ttl_seconds"])
        except fcm.MessageInvalid as exc:
            raise ValidationFailed.on("ttl_seconds", exc.message) from None


# Where the FCM message builder names a field, which content field that is.
_MESSAGE_FIELD_TO_CONTENT = {
    "title": "title",
    "body": "subtitle",
    "image": "image_url",
    "image_url": "image_url",
    "data": "data",
    "link": "link",
    "analytics_label": "analytics_label",
}


def _content_error_field(field: str) -> str:
    last = (field or "").rsplit(".", 1)[-1]
    return _MESSAGE_FIELD_TO_CONTENT.get(last, "non_field_errors")


def _push_content(content: Mapping[str, Any]) -> PushContent:
    return PushContent(
        title=content.get("title") or "",
        body=content.get("subtitle") or "",
        image_url=content.get("image_url") or None,
        data=dict(content.get("data") or {}) or None,
        link=content.get("link") or None,
        analytics_label=content.get("analytics_label") or None,
    )


def delivery_options_of(values: Mapping[str, Any]) -> DeliveryOptions:
    return DeliveryOptions(
        priority=values.get("priority") or "high",
        ttl_seconds=values.get("ttl_seconds"),
        collapse_key=values.get("collapse_key") or None,
        android_channel_id=values.get("android_channel_id") or None,
        sound=values.get("sound") or None,
        badge=values.get("badge"),
    )


# Every message carries these in its data so the app can report events about it (POST
# /events with notification_id). Validation builds messages with a same-length placeholder,
# so a campaign that schedules is never refused for size when it is sent.
NOTIFICATION_ID_KEY = "pushpilot_notification_id"
CAMPAIGN_ID_KEY = "pushpilot_campaign_id"
_PLACEHOLDER_ID = uuid.UUID(int=0)


def _build(
    content: Mapping[str, Any],
    *,
    topic: str,
    condition: str,
    options: Mapping[str, Any],
    notification_id: uuid.UUID,
    campaign_id: uuid.UUID,
) -> dict:
    delivery = dataclasses.replace(
        delivery_options_of(options),
        extra_data={NOTIFICATION_ID_KEY: str(notification_id), CAMPAIGN_ID_KEY: str(campaign_id)},
    )
    return build_message(
        content=_push_content(content),
        options=delivery,
        topic=topic or None,
        condition=condition or None,
        collapse_id=str(notification_id),  # a resend shows once on the device
    )


def message_for(
    campaign: Campaign,
    content: CampaignContent,
    *,
    target: Mapping[str, str],
    notification_id: uuid.UUID,
) -> dict:
    """The FCM message one content of this campaign is sent as, to one delivery's target
    ({"topic": ...} or {"condition": ...}), validated by the builder."""
    return _build(
        _content_values(content),
        topic=target.get("topic", ""),
        condition=target.get("condition", ""),
        options={name: getattr(campaign, name) for name in OPTION_FIELDS},
        notification_id=notification_id,
        campaign_id=campaign.pk,
    )


def _validate_contents(
    contents: Sequence[Mapping[str, Any]],
    *,
    topic: str,
    condition: str,
    options: Mapping[str, Any],
) -> None:
    """Every content must make a valid FCM message for this target and these options,
    size included. Errors come back like DRF's nested ones: {"contents": [{}, {field: [..]}]}."""
    if len(contents) > MAX_CONTENTS:
        raise ValidationFailed.on("contents", f"At most {MAX_CONTENTS} contents per campaign.")
    errors: list[dict[str, list[str]]] = []
    for content in contents:
        item: dict[str, list[str]] = {}
        try:
            if content.get("data"):
                fcm.validate_data(dict(content["data"]))
            if content.get("analytics_label"):
                fcm.validate_analytics_label(content["analytics_label"])
            _build(
                content,
                topic=topic,
                condition=condition,
                options=options,
                notification_id=_PLACEHOLDER_ID,
                campaign_id=_PLACEHOLDER_ID,
            )
        except fcm.MessageInvalid as exc:
            item.setdefault(_content_error_field(exc.field), []).append(exc.message)
        errors.append(item)
    if any(errors):
        raise ValidationFailed(details={"contents": errors})


def _schedule_fields(
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


def _option_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """Model values for delivery options: an empty text option is "", never None."""
    return {
        name: value if value is not None or name in NULLABLE_OPTIONS else ""
        for name, value in options.items()
    }


def _stored_start(campaign: Campaign) -> datetime | None:
    return datetime.fromisoformat(campaign.scheduled_local) if campaign.scheduled_local else None


def _content_values(content: CampaignContent) -> dict[str, Any]:
    return {name: getattr(content, name) for name in CONTENT_FIELDS}


def _clean_content(values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = {name: values.get(name) for name in CONTENT_FIELDS}
    for name in ("subtitle", "image_url", "link", "analytics_label"):
        cleaned[name] = cleaned[name] or ""
    cleaned["data"] = dict(cleaned["data"] or {})
    return cleaned


def _locked(campaign_id) -> Campaign:
    """The campaign row, locked for the rest of the transaction (PostgreSQL row lock; on
    SQLite the IMMEDIATE transaction already serialises writers)."""
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None:  # deleted by a concurrent request
        raise NotFound("Campaign not found.")
    return campaign


# --- create / update / delete -----------------------------------------------------------------
@transaction.atomic
def create_campaign(
    *,
    workspace,
    actor,
    name: str,
    description: str = "",
    topic: str = "",
    condition: str = "",
    contents: Sequence[Mapping[str, Any]] = (),
    scheduled_at: datetime | None = None,
    timezone_name: str | None = None,
    rrule: str = "",
    exclusion_dates: Iterable = (),
    catch_up_window_seconds: int | None = DEFAULT_CATCH_UP_WINDOW_SECONDS,
    **options: Any,
) -> Campaign:
    unknown = set(options) - set(OPTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign fields: {sorted(unknown)}")
    topic, condition = _validate_target(topic, condition)
    _validate_options(options)
    contents = [_clean_content(content) for content in contents]
    _validate_contents(contents, topic=topic, condition=condition, options=options)
    schedule = _schedule_fields(
        start=scheduled_at,
        timezone_name=timezone_name or workspace.timezone or "UTC",
        rrule=rrule,
        exclusion_dates=exclusion_dates,
    )
    campaign = Campaign.objects.create(
        workspace=workspace,
        created_by=user_or_none(actor),
        name=name,
        description=description or "",
        topic=topic,
        condition=condition,
        catch_up_window_seconds=catch_up_window_seconds,
        **_option_values(options),
        **schedule,
    )
    CampaignContent.objects.bulk_create(
        CampaignContent(campaign=campaign, position=index, **values)
        for index, values in enumerate(contents)
    )
    audit.record(
        "campaign.created",
        actor=actor,
        workspace=workspace,
        target=campaign,
        metadata={"name": name, "contents": len(contents)},
    )
    transaction.on_commit(lambda: campaign_created_total.labels(origin="create").inc())
    return campaign


@transaction.atomic
def update_campaign(*, campaign: Campaign, actor, **changes: Any) -> Campaign:
    """Change a campaign. Name and description change in any state; contents, target,
    delivery options and schedule only while draft (409 CAMPAIGN_LOCKED otherwise)."""
    unknown = set(changes) - LOCKED_FIELDS - FREE_FIELDS
    if unknown:
        raise TypeError(f"unknown campaign fields: {sorted(unknown)}")
    campaign = _locked(campaign.pk)
    locked_changes = set(changes) & LOCKED_FIELDS
    if locked_changes and campaign.status != CampaignStatus.DRAFT:
        raise CampaignLocked(details={"status": campaign.status, "fields": sorted(locked_changes)})

    updates: dict[str, Any] = {name: changes[name] for name in FREE_FIELDS if name in changes}
    if locked_changes:
        if "topic" in changes or "condition" in changes:
            # A new target replaces the old one, whichever kind either is.
            topic, condition = changes.get("topic") or "", changes.get("condition") or ""
        else:
            topic, condition = campaign.topic, campaign.condition
        topic, condition = _validate_target(topic, condition)
        options = {name: changes.get(name, getattr(campaign, name)) for name in OPTION_FIELDS}
        _validate_options(options)
        if "contents" in changes:
            contents = [_clean_content(content) for content in changes["contents"]]
        else:
            contents = [_content_values(content) for content in campaign.contents.all()]
        _validate_contents(contents, topic=topic, condition=condition, options=options)
        updates.update(topic=topic, condition=condition)
        updates.update(_option_values({n: changes[n] for n in OPTION_FIELDS if n in changes}))
        if SCHEDULE_FIELDS & set(changes):
            updates.update(
                _schedule_fields(
                    # The wall-clock anchor survives a time-zone change: "09:00" stays
                    # 09:00 in the new zone unless a new scheduled_at is given.
                    start=changes["scheduled_at"]
                    if "scheduled_at" in changes
                    else _stored_start(campaign),
                    timezone_name=changes.get("timezone") or campaign.timezone,
                    rrule=changes.get("rrule", campaign.rrule) or "",
                    exclusion_dates=changes.get("exclusion_dates", campaign.exclusion_dates) or (),
                )
            )
        if "contents" in changes:
            _replace_contents(campaign, changes["contents"])

    for name, value in updates.items():
        setattr(campaign, name, value)
    # Only the changed columns: a plain save() must never write `status`.
    campaign.save(update_fields=[*updates, "updated_at"])
    audit.record(
        "campaign.updated",
        actor=actor,
        workspace=campaign.workspace,
        target=campaign,
        metadata={"fields": sorted(changes)},
    )
    return selectors.get_campaign(workspace=campaign.workspace, campaign_id=campaign.pk)


def _replace_contents(campaign: Campaign, contents: Sequence[Mapping[str, Any]]) -> None:
    """The list given becomes the campaign's contents, in that order. Items carrying the id
    of an existing content update it (its id is kept); the others are created; contents
    not mentioned are deleted."""
    existing = {str(content.pk): content for content in campaign.contents.all()}
    keep = {str(item["id"]) for item in contents if item.get("id") is not None}
    unknown = keep - set(existing)
    if unknown:
        raise ValidationFailed.on(
            "contents", f"Unknown content id(s): {', '.join(sorted(unknown))}."
        )
    CampaignContent.objects.filter(campaign=campaign).exclude(pk__in=keep).delete()
    # Move kept rows out of the way first: positions are unique per campaign.
    offset = MAX_CONTENTS + len(contents) + 1
    for index, item in enumerate(contents):
        if item.get("id") is not None:
            CampaignContent.objects.filter(pk=item["id"]).update(position=offset + index)
    for index, item in enumerate(contents):
        values = _clean_content(item)
        if item.get("id") is not None:
            content = existing[str(item["id"])]
            for name, value in values.items():
                setattr(content, name, value)
            content.position = index
            content.save()
        else:
            CampaignContent.objects.create(campaign=campaign, position=index, **values)


@transaction.atomic
def delete_campaign(*, campaign: Campaign, actor) -> None:
    campaign = _locked(campaign.pk)
    if campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        raise CampaignActive(details={"status": campaign.status})
    if campaign.mark_deleted():
        audit.record("campaign.deleted", actor=actor, workspace=campaign.workspace, target=campaign)


@transaction.atomic
def duplicate_campaign(*, campaign: Campaign, actor) -> Campaign:
    """A new draft with the same target, options, contents and recurrence; no start time
    (the original's is usually past) and no run history."""
    source = campaign
    copy = Campaign.objects.create(
        workspace=source.workspace,
        created_by=user_or_none(actor),
        duplicated_from=source,
        name=f"{source.name} (copy)"[:200],
        description=source.description,
        catch_up_window_seconds=source.catch_up_window_seconds,
        topic=source.topic,
        condition=source.condition,
        timezone=source.timezone,
        rrule=source.rrule,
        exclusion_dates=list(source.exclusion_dates or []),
        **{name: getattr(source, name) for name in OPTION_FIELDS},
    )
    CampaignContent.objects.bulk_create(
        CampaignContent(campaign=copy, position=index, **_content_values(content))
        for index, content in enumerate(source.contents.order_by("position"))
    )
    audit.record(
        "campaign.duplicated",
        actor=actor,
        workspace=copy.workspace,
        target=copy,
        metadata={"source_id": str(source.pk)},
    )
    transaction.on_commit(lambda: campaign_created_total.labels(origin="duplicate").inc())
    return selectors.get_campaign(workspace=copy.workspace, campaign_id=copy.pk)


# --- scheduling -------------------------------------------------------------------------------
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
    campaign = _locked(campaign.pk)
    if not can_transition(campaign.status, CampaignStatus.SCHEDULED):
        raise InvalidTransition(
            campaign.status, CampaignStatus.SCHEDULED, allowed_transitions(campaign.status)
        )
    if not firebase_is_connected(campaign.workspace):
        raise FirebaseNotConnected()
    contents = [_content_values(content) for content in campaign.contents.order_by("position")]
    if not contents:
        raise ValidationFailed.on("contents", "Add at least one content before scheduling.")
    options = {name: getattr(campaign, name) for name in OPTION_FIELDS}
    _validate_contents(
        contents, topic=campaign.topic, condition=campaign.condition, options=options
    )

    start = _stored_start(campaign) if scheduled_at is _UNSET else scheduled_at
    if start is None:
        raise ValidationFailed.on("scheduled_at", "Give the time of the first run.")
    fields = _schedule_fields(
        start=start,
        timezone_name=timezone_name or campaign.timezone,
        rrule=campaign.rrule if rrule is None else rrule,
        exclusion_dates=campaign.exclusion_dates if exclusion_dates is None else exclusion_dates,
    )
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
    campaign = _locked(campaign.pk)
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
    campaign = _locked(campaign.pk)
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


# --- for the sending engine -------------------------------------------------------------------
# The engine works in batches of deliveries of many campaigns: each function takes campaign
# ids, locks their rows in id order (two batches that share campaigns queue instead of
# deadlocking) and writes set-based.
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
    rows = Campaign.all_objects.select_for_update().filter(pk__in=ids).order_by("pk")
    return {campaign.pk: campaign for campaign in rows}


def is_sendable(campaign: Campaign) -> bool:
    return not campaign.is_deleted and campaign.status in (
        CampaignStatus.SCHEDULED,
        CampaignStatus.RUNNING,
    )


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
    campaigns = [c for c in lock_for_sending(campaign_ids).values() if is_sendable(c)]
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
