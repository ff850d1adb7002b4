"""Ingestion validates each event on its own (a bad event is described, the others are kept),
then resolves its ids against the key's workspace, dedupes it by id, stores it if it is new
and counts it in its hourly rollup, all of these exactly once: an event RETURNING names as
inserted is counted, a duplicate (even one sent by a concurrent retry of the same batch)
never is.

On PostgreSQL everything after validation is ONE statement (apps.analytics.bulk.ingest):
one round trip, atomic on its own. On SQLite (the embedded mode) the ids are resolved by
a query, then the insert and the rollup upsert run in one short transaction.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.analytics import bulk, rollups
from apps.analytics.metrics import events_discarded_total, events_ingested_total
from apps.analytics.models import AnalyticsEvent, Platform
from apps.campaigns.models import Campaign
from apps.common import batches
from apps.common import bulk as common_bulk
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


@dataclass(slots=True)
class _Event:
    index: int
    event_id: str
    type: str
    occurred_at: datetime
    notification_id: str | None  # a valid UUID, as a string (see _parse_uuid)
    campaign_id: str | None
    platform: str
    properties: dict
    properties_json: str  # encoded once, for the size check and the insert
    content_id: uuid.UUID | None = None


# Why an event whose fields are valid cannot be stored: its ids, checked against the key's
# workspace (by bulk.ingest's statement on PostgreSQL, by _resolve_ids on SQLite).
ID_PROBLEMS = {
    "unknown_notification": ("notification_id", "No such notification in this workspace."),
    "other_campaign": ("campaign_id", "Not the campaign of this notification."),
    "unknown_campaign": ("campaign_id", "No such campaign in this workspace."),
}


def max_event_age() -> timedelta:
    return timedelta(days=settings.EVENTS_MAX_AGE_DAYS)


def event_kind(event_type: str) -> str:
    """The bounded name of a type: custom conversions are all `conversion`."""
    return "conversion" if event_type.startswith(CONVERSION_PREFIX) else event_type


def ingest_events(*, workspace_id: uuid.UUID, payload: Any, now: datetime | None = None):
    """Validate and store a batch reported by an app; returns an IngestResult."""
    events = batches.items_of(payload, "events", MAX_EVENTS_PER_REQUEST)
    now = now or timezone.now()
    result = IngestResult()
    rules = _Rules(now)
    valid: list[_Event] = []
    for index, raw in enumerate(events):
        event, errors = _validate(index, raw, rules)
        if errors:
            _reject(result, index, raw, errors)
        else:
            valid.append(event)
    if not valid:
        stored_types: Counter[str] = Counter()
    elif connection.vendor == "postgresql":
        stored = bulk.ingest(workspace_id, valid, now)
        for event in valid:
            if event.index in stored.problems:
                field_name, message = ID_PROBLEMS[stored.problems[event.index]]
                _reject(result, event.index, {"id": event.event_id}, {field_name: [message]})
        stored_types = stored.types
        result.duplicates = len(valid) - len(stored.problems) - sum(stored_types.values())
    else:
        stored_types = _store_sqlite(workspace_id, valid, now, result)
    result.accepted = sum(stored_types.values())
    result.errors.sort(key=lambda error: error["index"])
    kinds: Counter[str] = Counter()
    for event_type, n in stored_types.items():
        kinds[event_kind(event_type)] += n
    transaction.on_commit(lambda: _count_metrics(kinds, result))
    return result


def _store_sqlite(workspace_id, valid: list[_Event], now: datetime, result) -> Counter[str]:
    """(SQLite) Resolve the ids, drop repeats inside the batch, then insert the new events
    and count them in their rollups in one transaction; returns how many of each type
    were new."""
    valid = _resolve_ids(workspace_id, valid, result)
    fresh: list[_Event] = []
    seen: set[str] = set()
    for event in valid:
        if event.event_id in seen:
            result.duplicates += 1  # repeated inside this batch: the first one counts
        else:
            seen.add(event.event_id)
            fresh.append(event)
    if not fresh:
        return Counter()
    with transaction.atomic():
        inserted = _insert(workspace_id, fresh, now)
        stored = [event for event in fresh if event.event_id in inserted]
        rollups.increment(
            Counter(
                rollups.bucket_key(workspace_id, e.campaign_id, e.content_id, e.type, e.occurred_at)
                for e in stored
            )
        )
    result.duplicates += len(fresh) - len(stored)
    return Counter(e.type for e in stored)


def _count_metrics(kinds: Counter, result: IngestResult) -> None:
    for kind, n in kinds.items():
        events_ingested_total.labels(kind).inc(n)
    if result.duplicates:
        events_discarded_total.labels("duplicate").inc(result.duplicates)
    if result.rejected:
        events_discarded_total.labels("invalid").inc(result.rejected)


def _reject(result: IngestResult, index: int, raw: Any, errors: dict[str, list[str]]) -> None:
    result.rejected += 1
    event_id = raw.get("id") if isinstance(raw, dict) else None
    result.errors.append(
        {"index": index, "id": event_id if isinstance(event_id, str) else None, "errors": errors}
    )


class _Rules:
    """What one batch's events are checked against (computed once per batch)."""

    __slots__ = ("earliest", "latest", "too_old")

    def __init__(self, now: datetime) -> None:
        age = max_event_age()
        self.latest = now + MAX_FUTURE
        self.earliest = now - age
        self.too_old = f"Older than {age.days} days: too late to count."


ID_ERROR = "Required: 1 to 64 characters, letters, digits and . _ : - (a UUID fits)."
TYPE_ERROR = (
    "Required: delivered, opened, clicked, dismissed or conversion:<name> "
    "(name: 1 to 50 letters, digits, . _ -)."
)
PLATFORM_ERROR = f"One of {', '.join(sorted(PLATFORMS))}."
_match_event_id = EVENT_ID.match
_match_conversion = CONVERSION_TYPE.match


def _json_dumps():
    """json.dumps(value) for values json.loads produced: the same text, ~3x faster for
    small objects. json.dumps builds its C encoder on every call; this builds it once,
    with json.dumps's defaults. Without a circular-reference check: parsed JSON has no
    cycles (so no per-call state either)."""
    if c_make_encoder is None:  # no C accelerator in this Python: the plain way
        return json.dumps
    default = json.JSONEncoder()
    encoder = c_make_encoder(
        None, default.default, encode_basestring_ascii, None, default.key_separator,
        default.item_separator, default.sort_keys, default.skipkeys, default.allow_nan,
    )  # fmt: skip
    return lambda value: "".join(encoder(value, 0))


_dumps = _json_dumps()


def _validate(index: int, raw: Any, rules: _Rules) -> tuple[_Event | None, dict[str, list[str]]]:
    """Hand-written on purpose: this runs up to 1000 times per request, and DRF serializers
    cost ~20x more per event. The rules are the OpenAPI schema's (EventSerializer)."""
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["Each event must be an object."]}
    errors: dict[str, list[str]] = {}
    get = raw.get

    event_id = get("id")
    if not isinstance(event_id, str) or not _match_event_id(event_id):
        errors["id"] = [ID_ERROR]

    event_type = get("type")
    if not isinstance(event_type, str) or not (
        event_type in STANDARD_TYPES or _match_conversion(event_type)
    ):
        errors["type"] = [TYPE_ERROR]

    occurred_at = _parse_time(get("occurred_at"), rules, errors)
    notification_id = _parse_uuid(raw, "notification_id", errors)
    campaign_id = _parse_uuid(raw, "campaign_id", errors)

    platform = get("platform") or ""
    if platform and (not isinstance(platform, str) or platform not in PLATFORMS):
        errors["platform"] = [PLATFORM_ERROR]

    properties = get("properties") or {}
    encoded = "{}"
    if not isinstance(properties, dict):
        errors["properties"] = ["Expected an object."]
    elif properties:
        encoded = _dumps(properties)
        if len(encoded) > MAX_PROPERTIES_BYTES:
            errors["properties"] = [f"At most {MAX_PROPERTIES_BYTES} bytes of JSON."]
        # PostgreSQL's jsonb cannot store NULs. The encoding spells one \u0000, so a JSON
        # without that text has none (a literal backslash-u0000 is checked the long way).
        elif "\\u0000" in encoded and _has_nul(properties):
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


def _parse_time(value: Any, rules: _Rules, errors: dict) -> datetime | None:
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
    if moment > rules.latest:
        errors["occurred_at"] = ["More than a day in the future: check the device clock."]
    elif moment < rules.earliest:
        errors["occurred_at"] = [rules.too_old]
    return moment


# The usual spelling of a UUID (any case), which PostgreSQL reads as Python does.
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch


def _parse_uuid(raw: dict, name: str, errors: dict) -> str | None:
    """A valid UUID as a string (as given when spelled the usual way, else normalised), or
    None when absent. Valid means what uuid.UUID accepts."""
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        if _CANONICAL_UUID(value):
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    errors[name] = ["Not a valid UUID."]
    return None


def _resolve_ids(workspace_id, events: list[_Event], result: IngestResult) -> list[_Event]:
    """(SQLite) Every referenced id must belong to the key's workspace; another workspace's
    id is "unknown", exactly like an id that does not exist (no cross-tenant oracle). The
    PostgreSQL statement applies the same rules (bulk.ingest)."""
    for event in events:
        if event.notification_id:
            event.notification_id = uuid.UUID(event.notification_id)
        if event.campaign_id:
            event.campaign_id = uuid.UUID(event.campaign_id)
    notification_ids = {e.notification_id for e in events if e.notification_id}
    campaign_ids = {e.campaign_id for e in events if e.campaign_id and not e.notification_id}
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
        problem = None
        if event.notification_id:
            found = notifications.get(event.notification_id)
            if found is None:
                problem = "unknown_notification"
            else:
                if event.campaign_id and event.campaign_id != found[0]:
                    problem = "other_campaign"
                event.campaign_id, event.content_id = found
        elif event.campaign_id and event.campaign_id not in campaigns:
            problem = "unknown_campaign"
        if problem:
            field_name, message = ID_PROBLEMS[problem]
            _reject(result, event.index, {"id": event.event_id}, {field_name: [message]})
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
        conflict=("workspace", "occurred_at", "event_id"),
        on_conflict="NOTHING",
        returning="event_id",
    )
    return {row[0] for row in inserted}
