"""The one way to write the audit trail. Every state-changing service calls `record`, or
`record_many` for a batch (the sending engine)."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from apps.common.actors import api_key_of, user_or_none
from apps.common.context import current_client_ip, current_request_id
from apps.common.logging import get_logger, redact_value
from apps.common.models import AuditLog

logger = get_logger("pushpilot.audit")


def record(
    action: str,
    *,
    actor=None,
    workspace=None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    metadata: dict[str, Any] | None = None,
) -> AuditLog:
    """Write one audit row in the caller's transaction (it rolls back with the change).

    `target` fills target_type/target_id from a model instance; metadata is redacted with
    the same rule as log lines, so a secret passed by mistake is never stored.
    """
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    entry = AuditLog.objects.create(
        workspace=workspace,
        actor=user_or_none(actor),
        actor_api_key_id=api_key_of(actor),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        metadata=redact_value("", metadata or {}),
        request_id=current_request_id() or "",
        ip=current_client_ip(),
    )
    logger.info(
        "audit",
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        workspace_id=str(workspace.pk) if workspace is not None else None,
    )
    return entry


@dataclass(frozen=True)
class Entry:
    """One row for `record_many` (no actor: batches are the engine's own work)."""

    action: str
    workspace_id: Any
    target: models.Model
    metadata: dict[str, Any] = field(default_factory=dict)


def record_many(entries: Iterable[Entry]) -> int:
    """Write many audit rows with one INSERT, in the caller's transaction; same redaction
    and request id as `record`. Returns how many were written."""
    request_id, ip = current_request_id() or "", current_client_ip()
    rows = [
        AuditLog(
            workspace_id=entry.workspace_id,
            action=entry.action,
            target_type=entry.target._meta.label_lower,
            target_id=str(entry.target.pk),
            metadata=redact_value("", entry.metadata),
            request_id=request_id,
            ip=ip,
        )
        for entry in entries
    ]
    AuditLog.objects.bulk_create(rows)
    return len(rows)
