"""A dry run: every message of a campaign's next occurrence, built as the engine would build
it and checked by FCM (`validate_only`) — every delivery (zone, language, variant) and every
content it carries — with nothing recorded as sent: no notification rows, no delivery or
campaign changes, no rollups. Only the audit row of the dry run itself is written.

The next occurrence is the earliest one with a delivery still waiting to run, else the next
instant of the schedule (its deliveries as the planner would make them now), else — for a
draft with no start time yet — an occurrence at this moment, so copy can be checked before
any schedule exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaigns
from apps.campaigns.models import Campaign, CampaignContent, CampaignStatus
from apps.common import audit
from apps.common.errors import Conflict, ValidationFailed
from apps.integrations.firebase import client as fcm
from apps.integrations.firebase.errors import FirebaseNotConnected
from apps.integrations.firebase.selectors import service_accounts_for
from apps.integrations.firebase.validation import MessageInvalid
from apps.notifications import planning
from apps.notifications.models import WAITING_STATUSES, Delivery, Occurrence

NO_NEXT_OCCURRENCE = (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED)


@dataclass(frozen=True)
class _Check:
    """One message of the dry run: a content of a delivery, as it would go to FCM."""

    delivery: int  # index in the occurrence's deliveries
    content: CampaignContent
    message: dict | None  # None: refused before FCM (by the message builder)
    error: dict | None = None


def dry_run(campaign: Campaign, *, actor, now: datetime) -> dict:
    """Validate every message of the campaign's next occurrence with FCM; see the module."""
    account = service_accounts_for([campaign.workspace_id]).get(campaign.workspace_id)
    if account is None:
        raise FirebaseNotConnected()
    contents = list(campaign.contents.order_by("position"))
    if not contents:
        raise ValidationFailed.on("contents", "Add at least one content to check.")
    occurrence, deliveries = _next_occurrence(campaign, now)
    checks = _checks(campaign, deliveries, contents)
    results = fcm.send_many(
        fcm.Send(key, account, check.message, validate_only=True)
        for key, check in enumerate(checks)
        if check.message is not None
    )
    outcomes: dict[int, list[dict]] = {index: [] for index in range(len(deliveries))}
    for key, check in enumerate(checks):
        outcomes[check.delivery].append(_outcome(check, results.get(key)))
    rows = [
        _delivery_row(campaign, delivery, outcomes[index])
        for index, delivery in enumerate(deliveries)
    ]
    body = {
        "occurrence": occurrence.at,
        "occurrence_local": occurrence.local,
        "ok": all(row["ok"] for row in rows),
        "messages": len(checks),
        "deliveries": rows,
    }
    audit.record(
        "campaign.dry_run",
        actor=actor,
        workspace=campaign.workspace,
        target=campaign,
        metadata={
            "occurrence": occurrence.at.isoformat(),
            "deliveries": len(rows),
            "messages": len(checks),
            "failed": sum(1 for row in rows if not row["ok"]),
        },
    )
    return body


def _next_occurrence(campaign: Campaign, now: datetime) -> tuple[Occurrence, list]:
    waiting = (
        Delivery.objects.filter(campaign=campaign, status__in=WAITING_STATUSES)
        .select_related("occurrence")
        .order_by("occurrence__at")
        .first()
    )
    if waiting is not None:
        occurrence = waiting.occurrence
        return occurrence, list(occurrence.deliveries.order_by("run_at", "slice"))
    if campaign.status in NO_NEXT_OCCURRENCE:
        raise Conflict(
            f"A {campaign.status} campaign has no next occurrence to check; duplicate it "
            "to check and send it again.",
            details={"status": campaign.status},
        )
    schedule = campaign_selectors.schedule_of(campaign)
    upcoming = schedule.upcoming(now, 1) if schedule is not None else []
    if upcoming:
        at, local = upcoming[0].utc, upcoming[0].local
    elif schedule is None:  # a draft without a start: as if it were sent now
        at, local = now, now.astimezone(ZoneInfo(campaign.timezone))
    else:
        raise Conflict("The campaign's schedule has no future run.", details={})
    occurrence = Occurrence(
        workspace_id=campaign.workspace_id, campaign=campaign, at=at, local=local.isoformat()
    )
    zones, languages = planning.split_for(campaign)
    return occurrence, planning.deliveries_for(
        campaign, occurrence, zones=zones, languages=languages, now=now
    )


def _contents_of(campaign: Campaign, delivery, contents: list) -> list:
    """What a delivery carries: every content, a variant's one, or — for an experiment's
    winner delivery — the chosen one, or every candidate while none is chosen yet."""
    if not delivery.variant:
        return contents
    if delivery.variant == "winner":
        if campaign.experiment_result is None:
            return contents
        position = campaign.experiment_result["winner"]
    else:
        position = int(delivery.variant)
    return [content for content in contents if content.position == position]


def _checks(campaign: Campaign, deliveries: list, contents: list) -> list[_Check]:
    """Every message to check; those beyond DRY_RUN_MAX_MESSAGES are reported unchecked."""
    checks = []
    for index, delivery in enumerate(deliveries):
        target = delivery.target
        for content in _contents_of(campaign, delivery, contents):
            if len(checks) >= settings.DRY_RUN_MAX_MESSAGES:
                limit = settings.DRY_RUN_MAX_MESSAGES
                error = {"code": "NOT_CHECKED", "message": f"A dry run checks {limit} messages."}
                checks.append(_Check(index, content, None, error))
                continue
            try:
                message = campaigns.message_for(
                    campaign,
                    content,
                    target=target,
                    notification_id=uuid.uuid4(),
                    language=delivery.language,
                )
            except MessageInvalid as exc:
                error = {"code": "INVALID_ARGUMENT", "message": exc.message}
                checks.append(_Check(index, content, None, error))
            else:
                checks.append(_Check(index, content, message))
    return checks


def _outcome(check: _Check, result) -> dict:
    error = check.error
    if check.message is not None:
        if isinstance(result, fcm.FcmError):
            error = {"code": result.error_code, "message": result.message}
        elif result is fcm.NOT_SENT:
            error = {"code": "NOT_CHECKED", "message": "FCM was not reached."}
    return {
        "content_id": check.content.pk,
        "position": check.content.position,
        "ok": error is None,
        "error": error,
    }


def _delivery_row(campaign: Campaign, delivery, messages: list[dict]) -> dict:
    zones = sorted(planning.zones_of(delivery))
    errors = [message["error"] for message in messages if message["error"]]
    return {
        "slice": delivery.slice,
        "target": delivery.target,
        "run_at": delivery.run_at,
        "run_at_local": delivery.run_at.astimezone(
            ZoneInfo(zones[0] if zones else campaign.timezone)
        ).isoformat(),
        "zones": zones,
        "language": delivery.language or None,
        "variant": delivery.variant or None,
        "status": getattr(delivery, "status", None) or "unplanned",
        "ok": not errors,
        "error": errors[0] if errors else None,
        "messages": messages,
    }
