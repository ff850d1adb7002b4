"""The subscription sync: makes FCM's topic subscriptions match the registry.

Queued after commit and coalesced: the first change of a workspace enqueues one task to run
SYNC_COALESCE_SECONDS later, and every change until it starts rides along. The task claims
waiting devices (up to 1,000 at a time, `FOR UPDATE SKIP LOCKED`, a claim token and time
renewed after every call, so two tasks never work on one device and a crashed one's devices
are reclaimed DEVICE_SYNC_CLAIM_SECONDS after its last call), groups what they need by
(topic, add or remove), and makes one call per group: the Instance ID batch API for many
tokens, the v1 API for one. Then it
records what FCM confirmed: a device is done when its confirmed topics equal its wanted
topics (a change that arrived meanwhile keeps it waiting). NOT_FOUND or INVALID_ARGUMENT
for a token retires its device; other per-token errors keep the claim until it expires
(a backoff); a whole call refused with 429 or 5xx ends the task, to be retried later with
what was confirmed so far recorded. The dispatcher's loop re-enqueues every workspace with
devices left waiting (`requeue_waiting`), so a lost task loses nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.utils import timezone

from apps.common import bulk
from apps.common.logging import get_logger
from apps.devices import audience
from apps.devices.audience import Membership
from apps.devices.models import Device, DeviceStatus
from apps.integrations.firebase import crypto, subscriptions
from apps.integrations.firebase import selectors as firebase
from apps.integrations.firebase.client import FcmError

logger = get_logger("pushpilot.devices")

CLAIM_CHUNK = 1000
RETIRING_ERRORS = frozenset({"NOT_FOUND", "INVALID_ARGUMENT"})


class RetryLater(Exception):
    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


def _queued_key(workspace_id) -> str:
    return f"devices:sync-queued:{workspace_id}"


def schedule_on_commit(workspace_id) -> None:
    transaction.on_commit(lambda: enqueue(workspace_id))


def enqueue(workspace_id) -> None:
    from apps.devices import tasks  # tasks import the services: import when called

    delay = settings.DEVICE_SYNC_COALESCE_SECONDS
    # add() is False when a task is already queued; None when the cache is down (enqueue).
    if cache.add(_queued_key(workspace_id), 1, timeout=max(delay * 10, 10)) is False:
        return
    tasks.sync_devices.apply_async((str(workspace_id),), countdown=delay)


@dataclass
class _Claimed:
    id: uuid.UUID
    token: str
    wanted: set[str]
    confirmed: set[str]
    retired: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class SyncReport:
    devices: int = 0
    calls: int = 0
    retired: int = 0
    failed: int = 0


def sync_workspace(workspace_id) -> SyncReport:
    """Work through every waiting device of the workspace; raises RetryLater when FCM asks
    us to back off (what was confirmed is recorded first)."""
    cache.delete(_queued_key(workspace_id))  # changes from now on queue a new task
    report = SyncReport()
    account = _account(workspace_id)
    if account is None:
        return report  # not connected: the devices wait for requeue_waiting after connecting
    while True:
        claim = uuid.uuid4()
        claimed = _claim(workspace_id, claim)
        if not claimed:
            return report
        report.devices += len(claimed)
        try:
            report.calls += _apply(account, claimed, claim)
        except FcmError as exc:
            _record(workspace_id, claim, claimed, report)
            _release(claim)
            # 429 and 5xx pass; a refused credential waits for the connection to be mended.
            seconds = exc.retry_after or settings.DEVICE_SYNC_RETRY_SECONDS
            logger.warning("device_sync_deferred", workspace_id=str(workspace_id),
                           error=exc.error_code, retry_in=seconds)  # fmt: skip
            raise RetryLater(seconds, exc.error_code) from exc
        _record(workspace_id, claim, claimed, report)


def _account(workspace_id) -> dict | None:
    config = firebase.connected_config(workspace_id)
    return firebase.service_account_of(config) if config else None


def _claim(workspace_id, claim: uuid.UUID) -> list[_Claimed]:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DEVICE_SYNC_CLAIM_SECONDS)
    with transaction.atomic():
        ids = list(
            Device.objects.select_for_update(skip_locked=True)
            .filter(workspace_id=workspace_id, needs_sync=True)
            .filter(Q(sync_claim__isnull=True) | Q(sync_claimed_at__lt=stale))
            .order_by("id")
            .values_list("id", flat=True)[:CLAIM_CHUNK]
        )
        if not ids:
            return []
        Device.objects.filter(id__in=ids).update(sync_claim=claim, sync_claimed_at=now)
    rows = Device.objects.filter(id__in=ids, sync_claim=claim).values_list(
        "id", "encrypted_token", "topics", "subscribed"
    )
    return [
        _Claimed(pk, crypto.decrypt(secret), set(wanted), set(confirmed))
        for pk, secret, wanted, confirmed in rows
    ]


def _apply(account: dict, claimed: list[_Claimed], claim: uuid.UUID) -> int:
    """Make the calls; returns how many. Removals first, so a device never holds more
    topics than it will. The claim is renewed after each call: while the calls take their
    time (paced, or slow) it stays alive, so only a dead sync's claim ever expires."""
    groups: dict[tuple[bool, str], list[_Claimed]] = defaultdict(list)
    for device in claimed:
        for topic in device.confirmed - device.wanted:
            groups[(False, topic)].append(device)
        for topic in device.wanted - device.confirmed:
            groups[(True, topic)].append(device)
    calls = 0
    for (subscribe, topic), members in sorted(groups.items()):
        members = [device for device in members if not device.retired]
        if not members:
            continue
        calls += 1
        results = subscriptions.change_subscriptions(
            account, topic=topic, tokens=[device.token for device in members], subscribe=subscribe
        )
        _renew(claim)
        for device, error in zip(members, results, strict=True):
            if error is None:
                (device.confirmed.add if subscribe else device.confirmed.discard)(topic)
            elif error in RETIRING_ERRORS:
                device.retired = error
            else:
                device.errors.append(
                    f"{error} on {'add to' if subscribe else 'removal from'} {topic}"
                )
    return calls


def _record(workspace_id, claim: uuid.UUID, claimed: list[_Claimed], report: SyncReport) -> None:
    """Store what FCM confirmed; a device is done when it is where it should be."""
    now = timezone.now()
    retired = {device.id: device.retired for device in claimed if device.retired}
    kept = [device for device in claimed if not device.retired]
    with transaction.atomic():
        bulk.update_rows(
            Device,
            ("id", "updated_at", "subscribed", "sync_error"),
            [(d.id, now, sorted(d.confirmed), "; ".join(d.errors)[:200]) for d in kept],
            where={"sync_claim": claim},
        )
        done = [device.id for device in kept if not device.errors]
        Device.objects.filter(id__in=done, sync_claim=claim).update(
            needs_sync=ExpressionWrapper(~Q(topics=F("subscribed")), output_field=BooleanField()),
            sync_claim=None,
            sync_claimed_at=None,
        )
        # Errors keep their claim until it expires: the backoff before the next attempt.
        if retired:
            _retire(workspace_id, claim, retired, now)
        Device.objects.filter(
            id__in=[device.id for device in kept], status=DeviceStatus.REMOVED, subscribed=[]
        ).delete()
    report.retired += len(retired)
    report.failed += sum(1 for device in kept if device.errors)


def _retire(workspace_id, claim: uuid.UUID, retired: dict, now) -> None:
    """FCM no longer knows these tokens: their subscriptions went with them."""
    rows = list(
        Device.objects.select_for_update()
        .filter(id__in=retired, sync_claim=claim)
        .order_by("id")
        .values_list("id", "platform", "topics", "status")
    )
    audience.apply(
        workspace_id,
        [(Membership(platform, tuple(topics)), None)
         for _, platform, topics, status in rows if status == DeviceStatus.ACTIVE],
    )  # fmt: skip
    removed = [pk for pk, *_, status in rows if status == DeviceStatus.REMOVED]
    Device.objects.filter(id__in=removed).delete()
    for reason in set(retired.values()):
        Device.objects.filter(
            id__in=[pk for pk, *_ in rows if retired[pk] == reason and pk not in removed]
        ).update(
            status=DeviceStatus.RETIRED, retired_reason=reason, topics=[], subscribed=[],
            needs_sync=False, sync_claim=None, sync_claimed_at=None, sync_error="",
            updated_at=now,
        )  # fmt: skip


def _renew(claim: uuid.UUID) -> None:
    Device.objects.filter(sync_claim=claim).update(sync_claimed_at=timezone.now())


def _release(claim: uuid.UUID) -> None:
    Device.objects.filter(sync_claim=claim).update(sync_claim=None, sync_claimed_at=None)


def requeue_waiting(*, now=None) -> int:
    """Enqueue a sync for every workspace with devices waiting longer than the coalescing
    window allows and not claimed by a live sync (the safety net for lost tasks, syncs
    deferred by FCM, devices waiting for a Firebase connection); returns how many."""
    now = now or timezone.now()
    # Changed within the last sweep interval: their own task is likely still queued.
    settle = now - timedelta(seconds=settings.DEVICE_SYNC_SWEEP_SECONDS)
    stale = now - timedelta(seconds=settings.DEVICE_SYNC_CLAIM_SECONDS)
    waiting = set(
        Device.objects.filter(needs_sync=True, updated_at__lt=settle)
        .filter(Q(sync_claim__isnull=True) | Q(sync_claimed_at__lt=stale))
        .values_list("workspace_id", flat=True)
        .distinct()
    )
    workspace_ids = firebase.connected_workspace_ids(waiting) if waiting else set()
    for workspace_id in workspace_ids:
        enqueue(workspace_id)
    return len(workspace_ids)
