"""Ingestion validates each event on its own (a bad event is described, the others are kept),
resolves ids against the key's workspace in two queries per batch, and then, in one short
transaction, inserts the new events with
`INSERT ... ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING ...` and increments
the hourly rollups of exactly the rows RETURNING names (so a duplicate, even one sent by a
concurrent retry of the same batch, is never counted). On PostgreSQL both happen in one
statement (apps.analytics.bulk.insert_events_and_count); on SQLite in two.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.analytics import bulk, rollups
from apps.analytics.metrics import events_discarded_total, events_ingested_total
from apps.analytics.models import AnalyticsEvent, Platform
from apps.campaigns.models import Campaign
from apps.common import bulk as common_bulk
from apps.common.errors import ValidationFailed
from apps.notifications.models import Notification

MAX_EVENTS_PER_REQUEST = 1000
STANDARD_TYPES = frozenset({"delivered", "opened", "clicked", "dismissed"})
CONVERSION_PREFIX = "conversion:"
CONVERSION_TYPE = re.compile(r"^conversion:[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MAX_FUTURE = timedelta(days=1)
MAX_PROPERTIES_BYTES = 4096
PLATFORMS = frozenset(Platform.values)
EVENT_COLUMNS = (
    "id", "created_at", "updated_at", "workspace", "event_id", "type", "notification_id",
    "campaign_id", "content_id", "occurred_at", "platform", "properties",
)  # fmt: skip


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Event:
    index: int
    event_id: str
    type: str
    occurred_at: datetime
    notification_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    platform: str
    properties: dict
    properties_json: str  # encoded once, for the size check and the insert
    content_id: uuid.UUID | None = None


def max_event_age() -> timedelta:
    return timedelta(days=settings.EVENTS_MAX_AGE_DAYS)


def event_kind(event_type: str) -> str:
    """The bounded name of a type: custom conversions are all `conversion`."""
    return "conversion" if event_type.startswith(CONVERSION_PREFIX) else event_type


def ingest_events(*, workspace_id: uuid.UUID, payload: Any, now: datetime | None = None):
    """Validate and store a batch reported by an app; returns an IngestResult."""
    events = _batch(payload)
    now = now or timezone.now()
    result = IngestResult()
    valid: list[_Event] = []
    for index, raw in enumerate(events):
        event, errors = _validate(index, raw, now)
        if errors:
            _reject(result, index, raw, errors)
        else:
            valid.append(event)
    valid = _resolve_ids(workspace_id, valid, result)
    fresh: list[_Event] = []
    seen: set[str] = set()
    for event in valid:
        if event.event_id in seen:
            result.duplicates += 1  # repeated inside this batch: the first one counts
        else:
            seen.add(event.event_id)
            fresh.append(event)
    result.errors.sort(key=lambda error: error["index"])
    with transaction.atomic():
        stored_types = _store(workspace_id, fresh, now) if fresh else Counter()
        result.accepted = sum(stored_types.values())
        result.duplicates += len(fresh) - result.accepted
        kinds: Counter[str] = Counter()
        for event_type, n in stored_types.items():
            kinds[event_kind(event_type)] += n
        transaction.on_commit(lambda: _count_metrics(kinds, result))
    return result


def _store(workspace_id, events: list[_Event], now: datetime) -> Counter[str]:
    """Insert the events that are new and count them in their rollups; returns how many
    of each type were new."""
    if connection.vendor == "postgresql":
        return bulk.insert_events_and_count(workspace_id, events, now)
    inserted = _insert(workspace_id, events, now)
    stored = [event for event in events if event.event_id in inserted]
    rollups.increment(
        Counter(
            rollups.bucket_key(workspace_id, e.campaign_id, e.content_id, e.type, e.occurred_at)
            for e in stored
        )
    )
    return Counter(e.type for e in stored)


def _count_metrics(kinds: Counter, result: IngestResult) -> None:
    for kind, n in kinds.items():
        events_ingested_total.labels(kind).inc(n)
    if result.duplicates:
        events_discarded_total.labels("duplicate").inc(result.duplicates)
    if result.rejected:
        events_discarded_total.labels("invalid").inc(result.rejected)


def _batch(payload: Any) -> list:
    if not isinstance(payload, dict) or "events" not in payload:
        raise ValidationFailed.on("events", "This field is required.")
    events = payload["events"]
    if not isinstance(events, list):
        raise ValidationFailed.on("events", "Expected a list of events.")
    if not 1 <= len(events) <= MAX_EVENTS_PER_REQUEST:
        raise ValidationFailed.on(
            "events", f"Send 1 to {MAX_EVENTS_PER_REQUEST} events per request."
        )
    return events


def _reject(result: IngestResult, index: int, raw: Any, errors: dict[str, list[str]]) -> None:
    result.rejected += 1
    event_id = raw.get("id") if isinstance(raw, dict) else None
    result.errors.append(
        {"index": index, "id": event_id if isinstance(event_id, str) else None, "errors": errors}
    )


def _validate(index: int, raw: Any, now: datetime) -> tuple[_Event | None, dict[str, list[str]]]:
    """Hand-written on purpose: this runs up to 1000 times per request, and DRF serializers
    cost ~20x more per event. The rules are the OpenAPI schema's (EventSerializer)."""
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["Each event must be an object."]}
    errors: dict[str, list[str]] = {}

    event_id = raw.get("id")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        errors["id"] = ["Required: 1 to 64 characters, letters, digits and . _ : - (a UUID fits)."]

    event_type = raw.get("type")
    if not isinstance(event_type, str) or not (
        event_type in STANDARD_TYPES or CONVERSION_TYPE.match(event_type)
    ):
        errors["type"] = [
            "Required: delivered, opened, clicked, dismissed or conversion:<name> "
            "(name: 1 to 50 letters, digits, . _ -)."
        ]

    occurred_at = _parse_time(raw.get("occurred_at"), now, errors)
    notification_id = _parse_uuid(raw, "notification_id", errors)
    campaign_id = _parse_uuid(raw, "campaign_id", errors)

    platform = raw.get("platform") or ""
    if platform and (not isinstance(platform, str) or platform not in PLATFORMS):
        errors["platform"] = [f"One of {', '.join(sorted(PLATFORMS))}."]

    properties = raw.get("properties") or {}
    encoded = "{}"
    if not isinstance(properties, dict):
        errors["properties"] = ["Expected an object."]
    elif properties:
        encoded = json.dumps(properties)
        if len(encoded) > MAX_PROPERTIES_BYTES:
            errors["properties"] = [f"At most {MAX_PROPERTIES_BYTES} bytes of JSON."]
        elif _has_nul(properties):  # PostgreSQL's jsonb cannot store them
            errors["properties"] = ["NUL characters (\\u0000) are not allowed."]

    if errors:
        return None, errors
    return (
        _Event(
            index, event_id, event_type, occurred_at, notification_id, campaign_id, platform,
            properties, encoded,
        ),
        {},
    )  # fmt: skip


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _parse_time(value: Any, now: datetime, errors: dict) -> datetime | None:
    if not isinstance(value, str):
        errors["occurred_at"] = ["Required: an ISO 8601 time with a UTC offset."]
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors["occurred_at"] = ["Not an ISO 8601 time."]
        return None
    if moment.tzinfo is None:
        errors["occurred_at"] = ["Include the UTC offset (for example Z or +02:00)."]
        return None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed out of range by its offset
        errors["occurred_at"] = ["Out of range."]
        return None
    if moment > now + MAX_FUTURE:
        errors["occurred_at"] = ["More than a day in the future: check the device clock."]
    elif moment < now - max_event_age():
        errors["occurred_at"] = [f"Older than {max_event_age().days} days: too late to count."]
    return moment


def _parse_uuid(raw: dict, name: str, errors: dict) -> uuid.UUID | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors[name] = ["Not a valid UUID."]
    return None


def _resolve_ids(workspace_id, events: list[_Event], result: IngestResult) -> list[_Event]:
    """Every referenced id must belong to the key's workspace; another workspace's id is
    "unknown", exactly like an id that does not exist (no cross-tenant oracle)."""
    notification_ids = {e.notification_id for e in events if e.notification_id}
    campaign_ids = {e.campaign_id for e in events if e.campaign_id}
    notifications = {
        pk: (campaign_id, content_id)
        for pk, campaign_id, content_id in Notification.objects.filter(
            workspace_id=workspace_id, pk__in=notification_ids
        ).values_list("pk", "campaign_id", "content_id")
    } if notification_ids else {}  # fmt: skip
    campaigns = (
        set(
            Campaign.all_objects.filter(workspace_id=workspace_id, pk__in=campaign_ids).values_list(
                "pk", flat=True
            )
        )
        if campaign_ids
        else set()
    )
    kept = []
    for event in events:
        errors: dict[str, list[str]] = {}
        if event.notification_id:
            found = notifications.get(event.notification_id)
            if found is None:
                errors["notification_id"] = ["No such notification in this workspace."]
            else:
                if event.campaign_id and event.campaign_id != found[0]:
                    errors["campaign_id"] = ["Not the campaign of this notification."]
                event.campaign_id, event.content_id = found
        elif event.campaign_id and event.campaign_id not in campaigns:
            errors["campaign_id"] = ["No such campaign in this workspace."]
        if errors:
            _reject(result, event.index, {"id": event.event_id}, errors)
        else:
            kept.append(event)
    return kept


def _insert(workspace_id, events: list[_Event], now: datetime) -> set[str]:
    """(SQLite) One multi-row insert that skips ids already stored; returns the client ids
    that were new (RETURNING lists only the rows actually inserted)."""
    rows = [
        (uuid.uuid4(), now, now, workspace_id, e.event_id, e.type, e.notification_id,
         e.campaign_id, e.content_id, e.occurred_at, e.platform, e.properties)
        for e in events
    ]  # fmt: skip
    inserted = common_bulk.insert(
        AnalyticsEvent,
        EVENT_COLUMNS,
        rows,
        conflict=("workspace", "event_id"),
        on_conflict="NOTHING",
        returning="event_id",
    )
    return {row[0] for row in inserted}
