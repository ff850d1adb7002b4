"""The audience counts, kept current in the transaction that changes the devices they count.

A device counts once in its profile (platform + exact topic set) and once in each of its
topics, while it is active. A change is a pair (before, after) of `Membership`s, None for
"not counted" (new, retired, removed); the deltas are aggregated in Python and written as
one multi-row upsert per table, rows sorted by key so that concurrent writers lock them in
the same order (no deadlocks).
"""

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from apps.common import bulk
from apps.devices.models import AudienceProfile, Device, DeviceStatus, TopicAudience


class Membership(NamedTuple):
    platform: str
    topics: tuple[str, ...]  # sorted


def topic_list(topics: Iterable[str]) -> str:
    return "," + ",".join(topics) + ","


def apply(workspace_id, changes: Iterable[tuple[Membership | None, Membership | None]]) -> None:
    profiles: Counter[tuple[str, str]] = Counter()
    topics: Counter[tuple[str, str]] = Counter()
    for before, after in changes:
        if before == after:
            continue
        for membership, sign in ((before, -1), (after, 1)):
            if membership is None:
                continue
            profiles[(membership.platform, topic_list(membership.topics))] += sign
            for topic in membership.topics:
                topics[(topic, membership.platform)] += sign
    _add(
        AudienceProfile,
        ("platform", "topic_key", "topic_list"),
        workspace_id,
        {(platform, _digest(listed), listed): n for (platform, listed), n in profiles.items()},
    )
    _add(TopicAudience, ("topic", "platform"), workspace_id, topics)


def _digest(listed: str) -> str:
    return hashlib.sha256(listed.encode()).hexdigest()


def _add(model, names: tuple[str, ...], workspace_id, deltas: dict) -> None:
    """Add each delta to its row; the first two names are the row's key (with workspace)."""
    items = sorted((key, n) for key, n in deltas.items() if n)
    if not items:
        return
    now = timezone.now()
    table = connection.ops.quote_name(model._meta.db_table)
    bulk.insert(
        model,
        ("id", "created_at", "updated_at", "workspace", *names, "devices"),
        [(uuid.uuid4(), now, now, workspace_id, *key, n) for key, n in items],
        conflict=("workspace", *names[:2]),
        on_conflict=f'UPDATE SET "devices" = {table}."devices" + excluded."devices", '
        '"updated_at" = excluded."updated_at"',
    )


def rebuild(workspace_id) -> None:
    """Count again from the devices (a repair tool: the counts never need it in normal use)."""
    AudienceProfile.objects.filter(workspace_id=workspace_id).delete()
    TopicAudience.objects.filter(workspace_id=workspace_id).delete()
    rows = Device.objects.filter(workspace_id=workspace_id, status=DeviceStatus.ACTIVE)
    changes = (
        (None, Membership(platform, tuple(device_topics)))
        for platform, device_topics in rows.values_list("platform", "topics").iterator(5000)
    )
    apply(workspace_id, changes)
