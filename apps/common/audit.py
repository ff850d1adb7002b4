"""The one way to write the audit trail. Every state-changing service calls `record`."""

from typing import Any

from django.db import models

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
    actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    entry = AuditLog.objects.create(
        workspace=workspace,
        actor=actor,
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
