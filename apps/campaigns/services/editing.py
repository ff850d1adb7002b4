"""Campaigns created, edited, duplicated and deleted, with what may change in which state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction

from apps.campaigns import selectors
from apps.campaigns.errors import CampaignActive, CampaignLocked
from apps.campaigns.metrics import campaign_created_total
from apps.campaigns.models import DELIVERY_OPTION_FIELDS as OPTION_FIELDS
from apps.campaigns.models import Campaign, CampaignContent, CampaignStatus, QuietHours
from apps.campaigns.selectors import lock_campaign
from apps.campaigns.services.messages import (
    MAX_CONTENTS,
    clean_content,
    content_values,
    is_localized,
    option_values,
    validate_contents,
    validate_experiment,
    validate_options,
    validate_target,
)
from apps.campaigns.services.policies import is_admin
from apps.campaigns.services.scheduling import SCHEDULE_FIELDS, schedule_fields, stored_start
from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import PermissionDenied, ValidationFailed

# Fields that change what is sent or when: editable only while the campaign is a draft.
LOCKED_FIELDS = frozenset(
    {"topic", "condition", "contents", "recipient_time_zone", "experiment", "quiet_hours",
     *OPTION_FIELDS, *SCHEDULE_FIELDS}
)  # fmt: skip
# Name, description and the catch-up policy (it only governs future runs) change any time.
FREE_FIELDS = frozenset({"name", "description", "catch_up_window_seconds"})
DEFAULT_CATCH_UP_WINDOW_SECONDS = 3600


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
    recipient_time_zone: bool = False,
    experiment: Mapping[str, Any] | None = None,
    quiet_hours: str = QuietHours.DEFER,
    **options: Any,
) -> Campaign:
    unknown = set(options) - set(OPTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign fields: {sorted(unknown)}")
    _check_quiet_hours(quiet_hours, actor, workspace)
    contents = [clean_content(content) for content in contents]
    topic, condition = validate_target(
        topic, condition, recipient_time_zone=recipient_time_zone,
        localized=is_localized(contents),
    )  # fmt: skip
    validate_options(options)
    validate_contents(
        contents, topic=topic, condition=condition, options=options,
        recipient_time_zone=recipient_time_zone, **_languages(workspace),
    )  # fmt: skip
    experiment = validate_experiment(
        experiment, contents=contents, topic=topic, condition=condition, rrule=rrule or "",
        recipient_time_zone=recipient_time_zone,
    )  # fmt: skip
    schedule = schedule_fields(
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
        recipient_time_zone=recipient_time_zone,
        experiment=experiment,
        quiet_hours=quiet_hours,
        **option_values(options),
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
    campaign = lock_campaign(campaign.pk)
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
        by_zone = changes.get("recipient_time_zone", campaign.recipient_time_zone)
        if "contents" in changes:
            contents = [clean_content(content) for content in changes["contents"]]
        else:
            contents = [content_values(content) for content in campaign.contents.all()]
        topic, condition = validate_target(
            topic, condition, recipient_time_zone=by_zone, localized=is_localized(contents)
        )
        options = {name: changes.get(name, getattr(campaign, name)) for name in OPTION_FIELDS}
        validate_options(options)
        validate_contents(
            contents, topic=topic, condition=condition, options=options,
            recipient_time_zone=by_zone, **_languages(campaign.workspace),
        )  # fmt: skip
        updates.update(topic=topic, condition=condition, recipient_time_zone=by_zone)
        updates["experiment"] = validate_experiment(
            changes.get("experiment", campaign.experiment), contents=contents, topic=topic,
            condition=condition, rrule=changes.get("rrule", campaign.rrule) or "",
            recipient_time_zone=by_zone,
        )  # fmt: skip
        updates.update(option_values({n: changes[n] for n in OPTION_FIELDS if n in changes}))
        if "quiet_hours" in changes:
            _check_quiet_hours(changes["quiet_hours"], actor, campaign.workspace)
            updates["quiet_hours"] = changes["quiet_hours"]
        if SCHEDULE_FIELDS & set(changes):
            updates.update(
                schedule_fields(
                    # The wall-clock anchor survives a time-zone change: "09:00" stays
                    # 09:00 in the new zone unless a new scheduled_at is given.
                    start=changes["scheduled_at"]
                    if "scheduled_at" in changes
                    else stored_start(campaign),
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


def _check_quiet_hours(value: str, actor, workspace) -> None:
    """`ignore` sends through the workspace's quiet hours: an admin's decision (for
    transactional messages), like the policy itself."""
    if value == QuietHours.IGNORE and not is_admin(actor, workspace):
        raise PermissionDenied("Only admins and owners may send a campaign through quiet hours.")


def _languages(workspace) -> dict[str, Any]:
    return {"languages": workspace.languages, "default_language": workspace.default_language}


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
        values = clean_content(item)
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
    campaign = lock_campaign(campaign.pk)
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
        recipient_time_zone=source.recipient_time_zone,
        experiment=source.experiment,
        quiet_hours=source.quiet_hours,
        topic=source.topic,
        condition=source.condition,
        timezone=source.timezone,
        rrule=source.rrule,
        exclusion_dates=list(source.exclusion_dates or []),
        **{name: getattr(source, name) for name in OPTION_FIELDS},
    )
    CampaignContent.objects.bulk_create(
        CampaignContent(campaign=copy, position=index, **content_values(content))
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
