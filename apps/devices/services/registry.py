"""Registering, moving and removing devices: every write to the registry but the sync's.

Each device is validated on its own (a bad one is described, the others are kept), the
batch is written in one short transaction — insert the new tokens, lock and update the known
ones (in id order, as every writer of devices does), adjust the audience counts — and the
subscription sync is scheduled after commit for the devices whose topics changed.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.common import batches, bulk
from apps.common.errors import NotFound, ValidationFailed
from apps.common.languages import best_language, normalize_language
from apps.common.timezones import is_known_timezone
from apps.devices import audience, topics
from apps.devices.audience import Membership
from apps.devices.models import AudienceProfile, Device, DeviceStatus, Platform, TopicAudience
from apps.devices.services import sync
from apps.integrations.firebase import crypto
from apps.integrations.firebase.validation import TOPIC_MAX_LENGTH, TOPIC_PATTERN
from apps.workspaces.models import Workspace

MAX_DEVICES_PER_REQUEST = 1000
MAX_APP_TOPICS = 100  # FCM allows 2,000 per instance; three are PushPilot's
MAX_APP_VERSION_LENGTH = 64
TOKEN_PREFIX_LENGTH = 8
# FCM registration tokens: URL-safe base64 with ":" (the instance id separator), 100-200
# characters in practice.
TOKEN = re.compile(r"[A-Za-z0-9_\-:.]{20,1024}")
PLATFORMS = frozenset(Platform.values)
INSERT_COLUMNS = (
    "id", "created_at", "updated_at", "workspace", "token_digest", "encrypted_token",
    "token_prefix", "platform", "time_zone", "language", "app_version", "app_topics",
    "bucket", "topics", "subscribed", "status", "retired_reason", "needs_sync", "sync_error",
    "last_seen_at",
)  # fmt: skip
UPDATE_COLUMNS = (
    "id", "updated_at", "platform", "time_zone", "language", "app_version", "app_topics",
    "topics", "status", "retired_reason", "needs_sync", "last_seen_at",
)  # fmt: skip


@dataclass
class Registration:
    """A valid device of a request, ready to be written."""

    index: int
    token: str
    digest: str
    platform: str
    time_zone: str
    language: str
    app_version: str
    app_topics: list[str]
    topics: list[str] = field(default_factory=list)
    created: bool = False


@dataclass
class RegisterResult:
    created: int = 0
    updated: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    devices: list[Registration] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.created + self.updated


def register_one(*, workspace_id: uuid.UUID, payload: Any) -> Registration:
    """One device (the app's own registration): a bad field is a 400 naming it."""
    registration, errors = _validate(0, payload, workspace_id)
    if errors:
        raise ValidationFailed("The device is not valid.", details=errors)
    return _register(workspace_id, [registration]).devices[0]


def register_batch(*, workspace_id: uuid.UUID, payload: Any) -> RegisterResult:
    """Up to 1,000 devices (an import): invalid ones are described, the rest are kept."""
    items = batches.items_of(payload, "devices", MAX_DEVICES_PER_REQUEST)
    valid, rejected = [], []
    for index, raw in enumerate(items):
        registration, errors = _validate(index, raw, workspace_id)
        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append(registration)
    result = _register(workspace_id, valid) if valid else RegisterResult()
    result.rejected, result.errors = len(rejected), rejected
    return result


def _validate(index: int, raw: Any, workspace_id) -> tuple[Registration | None, dict]:
    """Hand-written for the same reason as event validation: it runs 1,000 times a request.
    The rules are the OpenAPI schema's (DeviceSerializer)."""
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["Each device must be an object."]}
    errors: dict[str, list[str]] = {}
    token = raw.get("token")
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        errors["token"] = [
            "Required: the FCM registration token (20 to 1024 letters, digits and _ - : .)."
        ]
    zone = raw.get("time_zone")
    if not is_known_timezone(zone):
        errors["time_zone"] = ["Required: an IANA time zone such as Europe/Paris."]
    language = normalize_language(raw.get("language"))
    if language is None:
        errors["language"] = ["Required: a BCP 47 language tag such as en, pt-BR or zh-Hant."]
    platform = raw.get("platform")
    if not isinstance(platform, str) or platform not in PLATFORMS:
        errors["platform"] = [f"Required: one of {', '.join(sorted(PLATFORMS))}."]
    app_version = raw.get("app_version") or ""
    if not isinstance(app_version, str) or len(app_version) > MAX_APP_VERSION_LENGTH:
        errors["app_version"] = [f"At most {MAX_APP_VERSION_LENGTH} characters."]
    app_topics = _app_topics(raw.get("topics"), errors)
    if errors:
        return None, errors
    return (
        Registration(index, token, topics.token_digest(workspace_id, token), platform, zone,
                     language, app_version, app_topics),
        {},
    )  # fmt: skip


def _app_topics(value: Any, errors: dict) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors["topics"] = ["Expected a list of topic names."]
        return []
    if len(value) > MAX_APP_TOPICS:
        errors["topics"] = [f"At most {MAX_APP_TOPICS} topics per device."]
        return []
    for name in value:
        if (
            not isinstance(name, str)
            or not TOPIC_PATTERN.match(name)
            or len(name) > TOPIC_MAX_LENGTH
        ):
            errors["topics"] = [
                f"Topic names are 1 to {TOPIC_MAX_LENGTH} letters, digits and - _ . ~ %."
            ]
            return []
        if name.startswith(topics.RESERVED_PREFIX):
            errors["topics"] = [f"Topics starting with '{topics.RESERVED_PREFIX}' are PushPilot's."]
            return []
    return sorted(set(value))


def _register(workspace_id, registrations: list[Registration]) -> RegisterResult:
    now = timezone.now()
    latest: dict[str, Registration] = {}
    for registration in registrations:  # the same token twice in a batch: the last one wins
        latest[registration.digest] = registration
    with transaction.atomic():
        languages, default = _languages_of(workspace_id, share_lock=True)
        for registration in registrations:
            registration.topics = topics.device_topics(
                app_topics=registration.app_topics,
                zone=registration.time_zone,
                language=best_language(registration.language, languages, default),
                bucket=topics.bucket_of(registration.digest),
            )
        fresh = _insert_new(workspace_id, sorted(latest.values(), key=lambda r: r.digest), now)
        new_digests = {r.digest for r in fresh}
        changes = [(None, Membership(r.platform, tuple(r.topics))) for r in fresh]
        known = [r for digest, r in latest.items() if digest not in new_digests]
        if known:
            changes += _update_known(workspace_id, known, now)
        audience.apply(workspace_id, changes)
        if any(before != after for before, after in changes):
            sync.schedule_on_commit(workspace_id)
    for registration in registrations:
        registration.created = registration is latest[registration.digest] and (
            registration.digest in new_digests
        )
    created = sum(r.created for r in registrations)
    return RegisterResult(
        created=created, updated=len(registrations) - created, devices=registrations
    )


def _languages_of(workspace_id, *, share_lock: bool = False) -> tuple[list[str], str]:
    """The workspace's languages and default. With `share_lock` (PostgreSQL), a change of
    them waits for this transaction, and this transaction for a change in progress: the
    remapping that follows a change always sees the devices registered with the old ones."""
    if share_lock and connection.vendor == "postgresql":
        table = connection.ops.quote_name(Workspace._meta.db_table)
        rows = bulk.execute(
            f"SELECT languages, default_language FROM {table} "  # noqa: S608 (a model's table)
            "WHERE id = %s AND NOT is_deleted FOR SHARE",
            [workspace_id],
        )
        found = (rows[0][0] if isinstance(rows[0][0], list) else json.loads(rows[0][0]),
                 rows[0][1]) if rows else None  # fmt: skip
    else:
        found = (
            Workspace.objects.filter(pk=workspace_id)
            .values_list("languages", "default_language")
            .first()
        )
    if found is None:  # deleted a moment ago (its key still cached): register nothing
        raise NotFound("This workspace is deleted.")
    return found


def _insert_new(workspace_id, registrations: list[Registration], now: datetime) -> list:
    """Insert every token not registered yet; returns the registrations that were new (a
    token inserted concurrently by another request counts as known)."""
    rows = [
        (uuid.uuid4(), now, now, workspace_id, r.digest, crypto.encrypt(r.token),
         r.token[:TOKEN_PREFIX_LENGTH], r.platform, r.time_zone, r.language, r.app_version,
         r.app_topics, topics.bucket_of(r.digest), r.topics, [], DeviceStatus.ACTIVE, "", True,
         "", now)
        for r in registrations
    ]  # fmt: skip
    inserted = bulk.insert(
        Device,
        INSERT_COLUMNS,
        rows,
        conflict=("workspace", "token_digest"),
        on_conflict="NOTHING",
        returning="token_digest",
    )
    new = {row[0] for row in inserted}
    return [r for r in registrations if r.digest in new]


def _update_known(workspace_id, registrations: list[Registration], now: datetime) -> list:
    """Update the registered tokens (reviving retired or removed ones); returns their
    count changes. A pending sync stays pending: only the sync decides it is done."""
    by_digest = {r.digest: r for r in registrations}
    current = (
        Device.objects.select_for_update()
        .filter(workspace_id=workspace_id, token_digest__in=by_digest)
        .order_by("id")
        .values_list(
            "id", "token_digest", "platform", "topics", "subscribed", "status", "needs_sync"
        )
    )
    rows, changes = [], []
    for pk, digest, platform, old_topics, subscribed, status, needs_sync in current:
        r = by_digest[digest]
        before = Membership(platform, tuple(old_topics)) if status == DeviceStatus.ACTIVE else None
        changes.append((before, Membership(r.platform, tuple(r.topics))))
        rows.append(
            (pk, now, r.platform, r.time_zone, r.language, r.app_version, r.app_topics, r.topics,
             DeviceStatus.ACTIVE, "", needs_sync or r.topics != subscribed, now)
        )  # fmt: skip
    bulk.update_rows(Device, UPDATE_COLUMNS, rows)
    return changes


def unregister(*, workspace_id: uuid.UUID, token: str) -> None:
    """The app's logout or the user's erasure: the device leaves its topics and then the
    registry. Another workspace's token, or an unknown one, is a 404."""
    digest = topics.token_digest(workspace_id, token) if isinstance(token, str) else ""
    with transaction.atomic():
        device = (
            Device.objects.select_for_update()
            .filter(workspace_id=workspace_id, token_digest=digest)
            .exclude(status=DeviceStatus.REMOVED)
            .first()
        )
        if device is None:
            raise NotFound("No device with this token is registered.")
        if device.status == DeviceStatus.ACTIVE:
            audience.apply(
                workspace_id, [(Membership(device.platform, tuple(device.topics)), None)]
            )
        if not device.subscribed:
            device.delete()
            return
        Device.objects.filter(pk=device.pk).update(
            status=DeviceStatus.REMOVED, topics=[], needs_sync=True, updated_at=timezone.now()
        )
        sync.schedule_on_commit(workspace_id)


def remap_languages(*, workspace_id: uuid.UUID, chunk: int = 1000) -> int:
    """Put every active device in the language topic the workspace's languages now give it
    (after the workspace added, removed or re-defaulted a language); returns how many moved.
    In chunks, each its own transaction, so a large registry is never locked at once."""
    moved, after_id = 0, None
    while True:
        languages, default = _languages_of(workspace_id)
        with transaction.atomic():
            rows = Device.objects.select_for_update().filter(
                workspace_id=workspace_id, status=DeviceStatus.ACTIVE
            )
            if after_id is not None:
                rows = rows.filter(id__gt=after_id)
            batch = list(
                rows.order_by("id").values_list(
                    "id", "platform", "language", "topics", "subscribed", "needs_sync"
                )[:chunk]
            )
            if not batch:
                return moved
            after_id = batch[-1][0]
            now = timezone.now()
            updates, changes = [], []
            for pk, platform, language, old_topics, subscribed, needs_sync in batch:
                wanted = language_topic_for(language, languages, default)
                new_topics = sorted(
                    {*(t for t in old_topics if topics.topic_kind(t) != "language"), wanted}
                )
                if new_topics != old_topics:
                    updates.append((pk, now, new_topics, needs_sync or new_topics != subscribed))
                    changes.append(
                        (Membership(platform, tuple(old_topics)),
                         Membership(platform, tuple(new_topics)))
                    )  # fmt: skip
            bulk.update_rows(Device, ("id", "updated_at", "topics", "needs_sync"), updates)
            audience.apply(workspace_id, changes)
            if updates:
                moved += len(updates)
                sync.schedule_on_commit(workspace_id)


def language_topic_for(language: str, languages: list[str], default: str) -> str:
    return topics.language_topic(best_language(language, languages, default))


def erase_workspace(*, workspace_id: uuid.UUID, chunk: int = 10_000) -> int:
    """Delete every device of a deleted workspace, and its counts (tokens are personal data;
    nothing will send to that workspace's topics again). In chunks, each its own
    transaction: a large registry is erased without one long lock."""
    AudienceProfile.objects.filter(workspace_id=workspace_id).delete()
    TopicAudience.objects.filter(workspace_id=workspace_id).delete()
    erased = 0
    while ids := list(
        Device.objects.filter(workspace_id=workspace_id).values_list("id", flat=True)[:chunk]
    ):
        erased += Device.objects.filter(id__in=ids).delete()[0]
    return erased
