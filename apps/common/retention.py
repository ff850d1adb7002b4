"""Retention of the append-only tables: raw events, notifications, audit rows (README
"Retention").

A workspace keeps each kind for a window of whole days: its own (RetentionPolicy, set by
admins through `PUT /retention`) or the default from settings. A row is **expired** when its
time key is before `start of today (UTC) - window`: occurred_at for events, created_at for
notifications and audit rows (audit rows of no workspace follow the default).

A run, per table:
1. the drop horizon is the oldest cutoff of all workspaces (the longest window, the default
   included): on PostgreSQL every partition wholly before it is dropped — no row in
   it is kept by anyone (apps.common.partitions);
2. then each group of workspaces sharing a cutoff has its rows older than the cutoff
   deleted in batches of RETENTION_BATCH_SIZE, each batch its own short transaction (the
   rows are picked, then deleted by id within their key range, so on PostgreSQL the delete
   only visits the partitions of that range). On SQLite this is all there is.

The periodic run (the dispatcher enqueues it every RETENTION_INTERVAL_SECONDS) first makes
the coming days' partitions and stops after RETENTION_MAX_BATCHES batches per table: one run
is bounded, the next carries on. `manage.py apply_retention` runs to the end. Rollups are
never touched: stats of past hours stay what they were.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.common import audit, partitions
from apps.common.actors import user_or_none
from apps.common.errors import ValidationFailed
from apps.common.logging import get_logger
from apps.common.models import RetentionPolicy

logger = get_logger("pushpilot.retention")

MAX_DAYS = 3650
# pg_try_advisory_lock key: one run at a time, however many dispatchers enqueue one.
RUN_LOCK = 0x7265746E  # "retn"


@dataclass(frozen=True)
class Kind:
    name: str  # the policy's field is `<name>_days`
    model: str  # app_label.Model
    key: str  # the time key
    default_setting: str

    @property
    def field(self) -> str:
        return f"{self.name}_days"

    def default_days(self) -> int:
        return getattr(settings, self.default_setting)

    def min_days(self) -> int:
        # Ingestion accepts events EVENTS_MAX_AGE_DAYS old and links them to notifications:
        # neither may be gone by then (+ 2: the cutoff's day boundary and clock skew).
        if self.name == "audit":
            return 1
        return settings.EVENTS_MAX_AGE_DAYS + 2

    def model_class(self):
        return apps.get_model(self.model)


KINDS = (
    Kind("events", "analytics.AnalyticsEvent", "occurred_at", "RETENTION_EVENTS_DAYS"),
    Kind(
        "notifications", "notifications.Notification", "created_at", "RETENTION_NOTIFICATIONS_DAYS"
    ),
    Kind("audit", "common.AuditLog", "created_at", "RETENTION_AUDIT_DAYS"),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}


# --- windows ----------------------------------------------------------------------------------
def windows(policy: RetentionPolicy | None) -> dict[str, int]:
    """Each kind's window in days: the policy's, else the default."""
    return {
        kind.field: (getattr(policy, kind.field, None) if policy else None) or kind.default_days()
        for kind in KINDS
    }


def policy_of(workspace_id) -> RetentionPolicy | None:
    return RetentionPolicy.objects.filter(workspace_id=workspace_id).first()


def cutoff(days: int, now: datetime | None = None) -> datetime:
    """Rows with a time key before this are expired: start of today (UTC) minus `days`."""
    return partitions.start_of_day(now or timezone.now()) - timedelta(days=days)


def cutoffs(policy: RetentionPolicy | None, now: datetime | None = None) -> dict[str, datetime]:
    """kind name -> the cutoff of these windows (the policy's, else the defaults)."""
    days = windows(policy)
    return {kind.name: cutoff(days[kind.field], now) for kind in KINDS}


def cutoffs_of(workspace_id, now: datetime | None = None) -> dict[str, datetime]:
    """kind name -> the workspace's cutoff."""
    return cutoffs(policy_of(workspace_id), now)


# A notification counts in the rollup of the hour it settled (sent_at, or its last change
# for a failure), which follows its created_at (its delivery's first start) by at most the
# delivery's retries: well under a day.
SETTLE_MARGIN = timedelta(days=1)


def raw_complete_since(workspace_id, now: datetime | None = None) -> datetime:
    """The first rollup bucket whose raw sources (events, notifications) retention has not
    touched: rebuild_rollups recomputes buckets from here on and keeps the older ones."""
    cut = cutoffs_of(workspace_id, now)
    return max(cut["events"], cut["notifications"] + SETTLE_MARGIN)


@transaction.atomic
def update_policy(*, workspace, actor, **values: Any) -> RetentionPolicy:
    """Replace the workspace's windows (PUT: a field left out or null is the default),
    audited with the windows before and after. A window outside its bounds is a 400."""
    fields = {kind.field: kind for kind in KINDS}
    unknown = set(values) - set(fields)
    if unknown:
        raise TypeError(f"unknown retention fields: {sorted(unknown)}")
    for name, kind in fields.items():
        days = values.get(name)
        if days is not None and not kind.min_days() <= days <= MAX_DAYS:
            raise ValidationFailed.on(
                name, f"Keep {kind.name} between {kind.min_days()} and {MAX_DAYS} days."
            )
    # One lock per workspace: of two admins saving at once, one's windows win whole.
    policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(workspace=workspace)
    before = windows(policy)
    for name in fields:
        setattr(policy, name, values.get(name))
    policy.updated_by = user_or_none(actor)
    policy.save()
    after = windows(policy)
    audit.record(
        "retention_policy.updated",
        actor=actor,
        workspace=workspace,
        target=policy,
        metadata={
            "before": before,
            "after": after,
            "changed": sorted(name for name in fields if before[name] != after[name]),
        },
    )
    return policy


# --- runs -------------------------------------------------------------------------------------
@dataclass
class TableReport:
    kind: str
    dropped: list[str] = field(default_factory=list)  # partitions
    deleted: int = 0  # rows (with dry_run: rows that would be)
    batches: int = 0
    finished: bool = True  # False: the run stopped at its batch limit, rows are left


@dataclass
class _Group:
    cutoff: datetime
    workspace_ids: list | None  # None: every workspace not in `others` (the default window)
    others: list = field(default_factory=list)


def _groups(kind: Kind, now: datetime, workspace_id=None) -> list[_Group]:
    """The workspaces by cutoff: one group per custom window, and the default's."""
    custom: dict[int, list] = {}
    policies = RetentionPolicy.objects.filter(**{f"{kind.field}__isnull": False})
    if workspace_id is not None:
        policies = policies.filter(workspace_id=workspace_id)
    for pk, days in policies.values_list("workspace_id", kind.field):
        if days != kind.default_days():
            custom.setdefault(days, []).append(pk)
    groups = [_Group(cutoff(days, now), ids) for days, ids in sorted(custom.items())]
    if workspace_id is None:
        others = [pk for ids in custom.values() for pk in ids]
        groups.append(_Group(cutoff(kind.default_days(), now), None, others))
    elif not custom:
        groups.append(_Group(cutoff(kind.default_days(), now), [workspace_id]))
    return groups


def _expired(kind: Kind, group: _Group):
    model = kind.model_class()
    rows = model._base_manager.filter(**{f"{kind.key}__lt": group.cutoff})
    if group.workspace_ids is not None:
        return rows.filter(workspace_id__in=group.workspace_ids)
    return rows.exclude(workspace_id__in=group.others) if group.others else rows


def apply(
    *,
    now: datetime | None = None,
    workspace_id=None,
    max_batches: int | None = None,
    batch_size: int | None = None,
    dry_run: bool = False,
) -> list[TableReport]:
    """One retention run over every table (see the module's docstring). `max_batches` per
    table (None: until done); `workspace_id`: only its rows, and no partition is dropped
    (partitions hold every workspace's rows). `dry_run` changes nothing and reports what
    would go (rows in partitions that would be dropped included)."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    reports = []
    for kind in KINDS:
        report = TableReport(kind.name)
        groups = _groups(kind, now, workspace_id)
        table = kind.model_class()._meta.db_table
        if workspace_id is None and groups:
            horizon = min(group.cutoff for group in groups)
            if dry_run:
                report.dropped = [p.name for p in partitions.wholly_before(table, horizon)]
            else:
                report.dropped = partitions.drop_expired(table, horizon)
        for group in groups:
            queryset = _expired(kind, group)
            if dry_run:
                report.deleted += queryset.count()
                continue
            while max_batches is None or report.batches < max_batches:
                deleted = _delete_batch(kind, queryset, batch_size)
                if not deleted:
                    break
                report.batches += 1
                report.deleted += deleted
            else:
                report.finished = False  # at the run's limit: the next run carries on
                break
        if report.dropped or report.deleted:
            logger.info("retention_applied", table=table, dropped=report.dropped,
                        deleted=report.deleted, batches=report.batches,
                        finished=report.finished, dry_run=dry_run)  # fmt: skip
        reports.append(report)
    return reports


def _delete_batch(kind: Kind, queryset, batch_size: int) -> int:
    """Delete up to `batch_size` rows of `queryset` in one short transaction: pick them
    (ids and keys), then delete by id within their key range — a partitioned table is
    pruned to the partitions of that range (ctid is not unique across partitions)."""
    with transaction.atomic():
        picked = list(queryset.values_list("pk", kind.key)[:batch_size])
        if not picked:
            return 0
        keys = [key for _, key in picked]
        deleted, _ = (
            kind.model_class()
            ._base_manager.filter(
                pk__in=[pk for pk, _ in picked],
                **{f"{kind.key}__gte": min(keys), f"{kind.key}__lte": max(keys)},
            )
            .delete()
        )
    return deleted


def periodic() -> list[TableReport] | None:
    """The dispatcher's hourly task: the coming days' partitions, then one bounded run.
    None when another run holds the lock (it does the work)."""
    with only_one_run(wait=False) as mine:
        if not mine:
            logger.info("retention_skipped", detail="another run is under way")
            return None
        partitions.ensure_partitions(settings.PARTITION_DAYS_AHEAD)
        return apply(max_batches=settings.RETENTION_MAX_BATCHES)


@contextlib.contextmanager
def only_one_run(*, wait: bool):
    """Yields whether this process holds the run lock (PostgreSQL: a session advisory lock;
    `wait`: until the run under way ends). Two runs would make the same partitions."""
    if connection.vendor != "postgresql":
        yield True  # the embedded mode has a single dispatcher
        return
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s), true", [RUN_LOCK])
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK])
        mine = cursor.fetchone()[-1]
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK])
