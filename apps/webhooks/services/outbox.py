"""The outbox: events written in the transaction of the change that causes them.

`emit_many` (and `emit`) is the one way in. It looks up, in ONE indexed query for the whole
call, the enabled endpoints of the events' workspaces, keeps those subscribed to each
event's type, and inserts one `WebhookMessage` per (event, endpoint) in the caller's
transaction: the change and its events commit or roll back together (no lost events, no
phantom ones). An event that no endpoint wants writes nothing, and its payload is never
built (`data` may be a callable). After commit, one delivery task per endpoint touched is
enqueued; the dispatcher's sweep re-queues anything whose task was lost.

The builders below (`campaign_changed`, `delivery_finished`, ...) are what other apps call,
one call at the place of each change; the payload of every event type is defined here.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.webhooks.models import WebhookEndpoint, WebhookMessage

EVENT_TYPES = (
    "campaign.approval_requested",
    "campaign.scheduled",
    "campaign.cancelled",
    "campaign.completed",
    "campaign.failed",
    "delivery.sent",
    "delivery.failed",
    "experiment.decided",
    "firebase.connection_failed",
    "webhook.test",
)


@dataclass(frozen=True)
class Event:
    workspace_id: Any
    type: str
    data: dict | Callable[[], dict]


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body_of(event_type: str, data: dict, at: datetime) -> str:
    """The Standard Webhooks payload shape: {"type", "timestamp", "data"}."""
    return json.dumps(
        {"type": event_type, "timestamp": _iso(at), "data": data},
        separators=(",", ":"),
        default=str,
    )


def emit(workspace_id, event_type: str, data: dict | Callable[[], dict]) -> int:
    """One event; returns how many endpoints it was written for."""
    return emit_many([Event(workspace_id, event_type, data)])


def emit_many(events: Iterable[Event], *, endpoints: list | None = None) -> int:
    """Write each event for every enabled endpoint of its workspace subscribed to its type,
    in the caller's transaction. `endpoints`: the endpoints to consider instead of the
    workspaces' subscribed ones (the test ping). Returns the number of messages written."""
    events = list(events)
    if not events:
        return 0
    if endpoints is None:
        endpoints = list(
            WebhookEndpoint.objects.filter(
                workspace_id__in={event.workspace_id for event in events}, is_enabled=True
            ).only("pk", "workspace_id", "event_types")
        )
        types = {event.type for event in events}
        endpoints = [e for e in endpoints if any(e.subscribes_to(t) for t in types)]
    if not endpoints:
        return 0
    by_workspace = defaultdict(list)
    for endpoint in endpoints:
        by_workspace[str(endpoint.workspace_id)].append(endpoint)
    now = timezone.now()
    rows = []
    for ordinal, event in enumerate(events):
        wanted = [
            e for e in by_workspace.get(str(event.workspace_id), ()) if endpoints_want(e, event)
        ]
        if not wanted:
            continue
        data = event.data() if callable(event.data) else event.data
        body, event_id = body_of(event.type, data, now), new_event_id()
        rows += [
            WebhookMessage(
                workspace_id=event.workspace_id, endpoint=endpoint, event_id=event_id,
                event_type=event.type, body=body, ordinal=ordinal,
            )
            for endpoint in wanted
        ]  # fmt: skip
    if not rows:
        return 0
    WebhookMessage.objects.bulk_create(rows)
    touched = sorted({str(row.endpoint_id) for row in rows})
    transaction.on_commit(lambda: _enqueue(touched))
    return len(rows)


def endpoints_want(endpoint: WebhookEndpoint, event: Event) -> bool:
    return event.type == "webhook.test" or endpoint.subscribes_to(event.type)


def _enqueue(endpoint_ids: list[str]) -> None:
    from apps.webhooks.services.delivery import enqueue

    for endpoint_id in endpoint_ids:
        enqueue(endpoint_id)


# --- what other apps call, one call per change ---------------------------------------------------
CAMPAIGN_EVENTS = {
    "pending_approval": "campaign.approval_requested",
    "scheduled": "campaign.scheduled",
    "cancelled": "campaign.cancelled",
    "completed": "campaign.completed",
    "failed": "campaign.failed",
}


def campaign_changed(campaigns: Iterable, *, previous: str, status: str, reason: str = "") -> int:
    """Campaigns moved from `previous` to `status` (apps.campaigns.state_machine). Only a
    draft being scheduled, or an approved one, is `campaign.scheduled` (a recurring campaign
    returning to scheduled between occurrences is not)."""
    event_type = CAMPAIGN_EVENTS.get(status)
    if event_type is None or (
        status == "scheduled" and previous not in ("draft", "pending_approval")
    ):
        return 0

    def data_of(campaign):
        return lambda: {
            "workspace_id": str(campaign.workspace_id),
            "campaign_id": str(campaign.pk),
            "name": campaign.name,
            "status": status,
            "previous_status": previous,
            "reason": reason,
            "scheduled_at": _iso(campaign.scheduled_at),
            "next_run_at": _iso(campaign.next_run_at),
            "last_run_at": _iso(campaign.last_run_at),
        }

    return emit_many(Event(c.workspace_id, event_type, data_of(c)) for c in campaigns)


def delivery_finished(finished: Iterable[tuple]) -> int:
    """Deliveries of the engine that reached completed (`delivery.sent`) or failed
    (`delivery.failed`), as (delivery, status, tally or None, error). Other statuses (a
    retry scheduled, skipped) emit nothing."""
    types = {"completed": "delivery.sent", "failed": "delivery.failed"}

    def data_of(delivery, status, tally, error):
        return lambda: {
            "workspace_id": str(delivery.workspace_id),
            "campaign_id": str(delivery.campaign_id),
            "occurrence_id": str(delivery.occurrence_id),
            "delivery_id": str(delivery.pk),
            "slice": delivery.slice,
            "target": delivery.target,
            "run_at": _iso(delivery.run_at),
            "attempts": delivery.attempts,
            "status": status,
            "notifications": tally or {},
            "error": error or "",
        }  # fmt: skip

    return emit_many(
        Event(delivery.workspace_id, types[status], data_of(delivery, status, tally, error))
        for delivery, status, tally, error in finished
        if status in types
    )


def experiment_decided(campaign, result: dict) -> int:
    return emit(
        campaign.workspace_id,
        "experiment.decided",
        lambda: {
            "workspace_id": str(campaign.workspace_id),
            "campaign_id": str(campaign.pk),
            "winner": result.get("winner"),
            "reason": result.get("reason"),
            "metric": result.get("metric"),
            "result": result,
        },
    )


def firebase_connection_failed(config, *, code: str, message: str) -> int:
    return emit(
        config.workspace_id,
        "firebase.connection_failed",
        lambda: {
            "workspace_id": str(config.workspace_id),
            "project_id": config.project_id,
            "client_email": config.client_email,
            "status": config.status,
            "error": {"code": code, "message": message},
        },
    )
