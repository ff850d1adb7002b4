"""Managing endpoints: create, change, delete, rotate the secret, disable and enable, the
test ping and manual redelivery. Every change is audited; secrets are stored encrypted
(MultiFernet, apps.integrations.firebase.crypto), returned only by create and rotate, and
never audited or logged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.common import audit
from apps.common.errors import Conflict, ValidationFailed
from apps.integrations.firebase import crypto
from apps.webhooks import signing
from apps.webhooks.addresses import url_problem
from apps.webhooks.models import (
    ALL_EVENTS,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from apps.webhooks.services import outbox

# Every endpoint is looked up by each event of its workspace: keep the list short.
MAX_ENDPOINTS_PER_WORKSPACE = 20


@dataclass(frozen=True)
class IssuedEndpoint:
    """An endpoint with its secret in clear: returned once, by create and rotate."""

    endpoint: WebhookEndpoint
    secret: str


def _check_url(url: str) -> str:
    problem = url_problem(url)
    if problem:
        raise ValidationFailed.on("url", problem)
    return url


def _check_event_types(event_types: list[str]) -> list[str]:
    if not event_types:
        raise ValidationFailed.on(
            "event_types", f'Name at least one event type, or "{ALL_EVENTS}".'
        )
    unknown = sorted(set(event_types) - {*outbox.EVENT_TYPES, ALL_EVENTS})
    if unknown:
        raise ValidationFailed.on("event_types", f"Unknown event types: {', '.join(unknown)}.")
    return [ALL_EVENTS] if ALL_EVENTS in event_types else sorted(set(event_types))


def _public(endpoint: WebhookEndpoint) -> dict:
    return {"url": endpoint.url, "event_types": endpoint.event_types}


@transaction.atomic
def create_endpoint(*, workspace, actor, url: str, event_types: list[str], description: str = ""):
    url, event_types = _check_url(url), _check_event_types(event_types)
    if WebhookEndpoint.objects.filter(workspace=workspace).count() >= MAX_ENDPOINTS_PER_WORKSPACE:
        raise Conflict(f"A workspace has at most {MAX_ENDPOINTS_PER_WORKSPACE} webhook endpoints.")
    secret = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace, url=url, description=description, event_types=event_types,
        secret_encrypted=crypto.encrypt(secret), created_by=actor,
    )  # fmt: skip
    audit.record("webhook_endpoint.created", actor=actor, workspace=workspace, target=endpoint,
                 metadata=_public(endpoint))  # fmt: skip
    return IssuedEndpoint(endpoint, secret)


@transaction.atomic
def update_endpoint(*, endpoint: WebhookEndpoint, actor, **changes) -> WebhookEndpoint:
    """Change url, description, event types; `enabled` disables (by hand) or enables."""
    enabled = changes.pop("enabled", None)
    fields = {}
    if "url" in changes:
        fields["url"] = _check_url(changes["url"])
    if "event_types" in changes:
        fields["event_types"] = _check_event_types(changes["event_types"])
    if "description" in changes:
        fields["description"] = changes["description"]
    if fields:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**fields, updated_at=timezone.now())
        audit.record("webhook_endpoint.updated", actor=actor, workspace=endpoint.workspace,
                     target=endpoint, metadata={"changed": sorted(fields), **fields})  # fmt: skip
    if enabled is True:
        enable_endpoint(endpoint=endpoint, actor=actor)
    elif enabled is False:
        disable_endpoint(endpoint=endpoint, actor=actor, reason="Disabled by hand.")
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def delete_endpoint(*, endpoint: WebhookEndpoint, actor) -> None:
    """Deleted with its pending events and its log (a worker mid-attempt changes nothing)."""
    audit.record("webhook_endpoint.deleted", actor=actor, workspace=endpoint.workspace,
                 target=endpoint, metadata=_public(endpoint))  # fmt: skip
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


@transaction.atomic
def rotate_secret(*, endpoint: WebhookEndpoint, actor) -> IssuedEndpoint:
    """A new secret signs from now on; the current one keeps signing too (a second
    signature) for WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS. A rotation during an overlap
    ends the older secret's overlap."""
    now = timezone.now()
    secret = signing.new_secret()
    overlap_until = now + timedelta(seconds=settings.WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS)
    # Conditional on the secret read: of two concurrent rotations, one wins.
    rotated = WebhookEndpoint.objects.filter(
        pk=endpoint.pk, secret_encrypted=endpoint.secret_encrypted
    ).update(
        secret_encrypted=crypto.encrypt(secret),
        previous_secret_encrypted=endpoint.secret_encrypted,
        previous_secret_expires_at=overlap_until,
        secret_rotated_at=now,
        updated_at=now,
    )
    if not rotated:
        raise Conflict("The secret was rotated meanwhile; read the endpoint and try again.")
    endpoint.refresh_from_db()
    audit.record("webhook_endpoint.secret_rotated", actor=actor, workspace=endpoint.workspace,
                 target=endpoint,
                 metadata={"previous_valid_until": overlap_until.isoformat()})  # fmt: skip
    return IssuedEndpoint(endpoint, secret)


@transaction.atomic
def disable_endpoint(*, endpoint: WebhookEndpoint, actor, reason: str) -> WebhookEndpoint:
    now = timezone.now()
    if WebhookEndpoint.objects.filter(pk=endpoint.pk, is_enabled=True).update(
        is_enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now
    ):
        audit.record("webhook_endpoint.disabled", actor=actor, workspace=endpoint.workspace,
                     target=endpoint, metadata={"reason": reason})  # fmt: skip
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def enable_endpoint(*, endpoint: WebhookEndpoint, actor) -> WebhookEndpoint:
    """Enabled again: its pending events are delivered from where the line stopped (an event
    given up stays failed; redeliver it to send it again). Enabling an enabled endpoint
    changes nothing."""
    now = timezone.now()
    if WebhookEndpoint.objects.filter(pk=endpoint.pk, is_enabled=False).update(
        is_enabled=True, disabled_reason="", disabled_at=None, retry_at=None, updated_at=now
    ):
        audit.record("webhook_endpoint.enabled", actor=actor, workspace=endpoint.workspace,
                     target=endpoint, metadata={"was": endpoint.disabled_reason})  # fmt: skip
        transaction.on_commit(lambda: outbox._enqueue([str(endpoint.pk)]))
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def send_test(*, endpoint: WebhookEndpoint, actor) -> WebhookMessage:
    """A `webhook.test` event for this endpoint alone, delivered like any other (in its line;
    while the endpoint is disabled it waits until it is enabled)."""
    outbox.emit_many(
        [outbox.Event(endpoint.workspace_id, "webhook.test", {
            "workspace_id": str(endpoint.workspace_id),
            "endpoint_id": str(endpoint.pk),
            "message": "A test event from PushPilot.",
        })],
        endpoints=[endpoint],
    )  # fmt: skip
    message = WebhookMessage.objects.filter(endpoint=endpoint).order_by("-created_at").first()
    audit.record("webhook_endpoint.tested", actor=actor, workspace=endpoint.workspace,
                 target=endpoint, metadata={"event_id": message.event_id})  # fmt: skip
    return message


@transaction.atomic
def redeliver(*, attempt: WebhookAttempt, actor) -> WebhookMessage:
    """The attempt's event again, at the end of the endpoint's line, with the same
    `webhook-id` and body (signed anew). A copy still waiting in the line: 409."""
    source = attempt.message
    if WebhookMessage.objects.filter(
        endpoint_id=attempt.endpoint_id, event_id=source.event_id, status=MessageStatus.PENDING
    ).exists():
        raise Conflict("This event is already waiting to be delivered to this endpoint.")
    message = WebhookMessage.objects.create(
        workspace_id=source.workspace_id, endpoint_id=attempt.endpoint_id,
        event_id=source.event_id, event_type=source.event_type, body=source.body,
    )  # fmt: skip
    audit.record("webhook_endpoint.redelivery_requested", actor=actor,
                 workspace=attempt.endpoint.workspace, target=attempt.endpoint,
                 metadata={"event_id": source.event_id, "attempt_id": str(attempt.pk)})  # fmt: skip
    transaction.on_commit(lambda: outbox._enqueue([str(attempt.endpoint_id)]))
    return message
