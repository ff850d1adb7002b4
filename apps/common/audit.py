"""The one way to write the audit trail. Every state-changing service calls `record`, or
`record_many` for a batch (the sending engine).

The engine's own work is summarised, not written row by row (README "Logs and audit"):
inside `engine_batch(...)` the entries given to `record_many` are gathered and written as
ONE row per workspace when the block ends — its counts per action, the entries themselves
(capped at AUDIT_BATCH_MAX_ENTRIES) and the campaigns they concern, so
`GET /audit-logs?campaign=` still finds a campaign's engine history. People's and keys'
actions (`record`) stay one row each: they are decisions.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
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
    and request id as `record`. Returns how many entries were recorded. Inside
    `engine_batch` they join the batch's summary rows instead."""
    summary = _engine_batch.get()
    if summary is not None:
        return summary.add(entries)
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


ENGINE_BATCH_TARGET = "engine.batch"


def about_campaign(campaign_id) -> models.Q:
    """The audit rows about one campaign: its own (people's actions, the engine's single
    decisions) and the engine batch rows that list it in `campaign_ids`. The ids are
    same-length UUID strings, so a match inside the JSON list's text is an exact one (and
    the same lookup works on PostgreSQL and SQLite)."""
    return models.Q(target_type="campaigns.campaign", target_id=str(campaign_id)) | models.Q(
        target_type=ENGINE_BATCH_TARGET, metadata__campaign_ids__icontains=str(campaign_id)
    )


def engine_entries(rows: Iterable[AuditLog]) -> Iterator[dict[str, Any]]:
    """The entries listed by engine batch rows (each as `record_many` was given it, with
    the row's action as `batch_action`), for readers that follow one delivery or campaign."""
    for row in rows:
        if row.target_type == ENGINE_BATCH_TARGET:
            for entry in row.metadata.get("entries", ()):
                yield {"batch_action": row.action, "batch": row.target_id, **entry}


@dataclass
class _Summary:
    """One workspace's part of an engine batch."""

    counts: Counter = field(default_factory=Counter)
    entries: list[dict[str, Any]] = field(default_factory=list)
    campaign_ids: set[str] = field(default_factory=set)
    left_out: int = 0


class _EngineBatch:
    def __init__(self, action: str, token: str) -> None:
        self.action, self.token = action, token
        self.by_workspace: dict[Any, _Summary] = {}

    def add(self, entries: Iterable[Entry]) -> int:
        cap, added = settings.AUDIT_BATCH_MAX_ENTRIES, 0
        for entry in entries:
            added += 1
            summary = self.by_workspace.setdefault(entry.workspace_id, _Summary())
            target = entry.target
            # A campaign transition counts by where it went: `campaign.running`, ….
            to = entry.metadata.get("to") if entry.action == "campaign.transition" else None
            summary.counts[f"campaign.{to}" if to else entry.action] += 1
            campaign_id = str(getattr(target, "campaign_id", None) or "")
            if target._meta.label_lower == "campaigns.campaign":
                campaign_id = str(target.pk)
            if campaign_id:  # at most one per entry: bounded by the batch
                summary.campaign_ids.add(campaign_id)
            if len(summary.entries) >= cap:
                summary.left_out += 1
                continue
            summary.entries.append(
                {
                    "action": entry.action,
                    "target_type": target._meta.label_lower,
                    "target_id": str(target.pk),
                    **({"campaign": campaign_id} if campaign_id != str(target.pk) else {}),
                    **entry.metadata,
                }
            )
        return added

    def flush(self) -> None:
        request_id, ip = current_request_id() or "", current_client_ip()
        AuditLog.objects.bulk_create(
            AuditLog(
                workspace_id=workspace_id,
                action=self.action,
                target_type=ENGINE_BATCH_TARGET,
                target_id=self.token,
                metadata=redact_value(
                    "",
                    {
                        "counts": dict(summary.counts),
                        "campaign_ids": sorted(summary.campaign_ids),
                        "entries": summary.entries,
                        "entries_left_out": summary.left_out,
                    },
                ),
                request_id=request_id,
                ip=ip,
            )
            for workspace_id, summary in self.by_workspace.items()
        )


_engine_batch: ContextVar[_EngineBatch | None] = ContextVar("engine_batch", default=None)


@contextmanager
def engine_batch(action: str, *, token) -> Iterator[None]:
    """Summarise the `record_many` entries of the block in one row per workspace (action
    `action`, target `engine.batch` / `token`), written when the block ends without an
    error — call it inside the transaction that makes the changes, so they share its fate.
    Nothing recorded, nothing written."""
    batch = _EngineBatch(action, str(token))
    reset = _engine_batch.set(batch)
    try:
        yield
    finally:
        _engine_batch.reset(reset)
    batch.flush()
