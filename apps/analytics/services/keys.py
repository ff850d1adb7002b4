"""Ingest keys are write-only credentials shipped inside apps. The secret is shown once (on
create and rotate); only its SHA-256 is stored. Authentication looks the hash up through a
short cache (INGEST_KEY_CACHE_SECONDS, default 5 s); rotate and revoke delete that cache
entry when they commit, so with a shared cache (Redis) the old secret stops working at
once, and with per-process local-memory caches within the cache TTL at the latest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.analytics.models import IngestKey
from apps.common import audit
from apps.common.errors import Conflict
from apps.common.tokens import digest_of, issue_secret

SECRET_PREFIX = "ppk_live_"
VISIBLE_CHARS = len(SECRET_PREFIX) + 8  # "ppk_live_" + 8 characters identify a key to humans
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    """A key with its secret: returned once, by create and rotate."""

    key: IngestKey
    secret: str


@dataclass(frozen=True)
class KeyPrincipal:
    """What an authenticated ingest request knows about its key (cacheable, no ORM object)."""

    key_id: uuid.UUID
    workspace_id: uuid.UUID
    prefix: str


def _new_secret() -> tuple[str, str, str]:
    issued = issue_secret(SECRET_PREFIX)
    return issued.value, issued.value[:VISIBLE_CHARS], issued.digest


def _principal_cache_key(secret_hash: str) -> str:
    return f"analytics:ingest-key:{secret_hash}"


def _forget_on_commit(secret_hash: str) -> None:
    transaction.on_commit(lambda: cache.delete(_principal_cache_key(secret_hash)))


def create_ingest_key(*, workspace, actor, name: str) -> IssuedKey:
    secret, prefix, digest = _new_secret()
    with transaction.atomic():
        key = IngestKey.objects.create(
            workspace=workspace, name=name, prefix=prefix, secret_hash=digest, created_by=actor
        )
        audit.record(
            "ingest_key.created",
            actor=actor,
            workspace=workspace,
            target=key,
            metadata={"name": name, "prefix": prefix},
        )
    return IssuedKey(key, secret)


def rotate_ingest_key(*, key: IngestKey, actor) -> IssuedKey:
    """Give the key a new secret; the old one stops working (see the module docstring)."""
    secret, prefix, digest = _new_secret()
    now = timezone.now()
    with transaction.atomic():
        # Conditional on the secret we read: two concurrent rotations cannot both "win".
        changed = IngestKey.objects.filter(
            pk=key.pk, revoked_at__isnull=True, secret_hash=key.secret_hash
        ).update(secret_hash=digest, prefix=prefix, rotated_at=now, updated_at=now)
        if not changed:
            raise Conflict("A revoked key cannot be rotated (or it was rotated meanwhile).")
        _forget_on_commit(key.secret_hash)
        old_prefix = key.prefix
        key.refresh_from_db()
        audit.record(
            "ingest_key.rotated",
            actor=actor,
            workspace=key.workspace,
            target=key,
            metadata={"old_prefix": old_prefix, "prefix": prefix},
        )
    return IssuedKey(key, secret)


def revoke_ingest_key(*, key: IngestKey, actor) -> IngestKey:
    """Revoke for good. Revoking a revoked key changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        if IngestKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=now, updated_at=now
        ):
            _forget_on_commit(key.secret_hash)
            audit.record(
                "ingest_key.revoked",
                actor=actor,
                workspace=key.workspace,
                target=key,
                metadata={"prefix": key.prefix},
            )
        key.refresh_from_db()
    return key


def principal_for_secret(secret: str) -> KeyPrincipal | None:
    """The active key this secret belongs to (its workspace not deleted), or None.

    A key read from the database (its first use, then at most once every
    INGEST_KEY_CACHE_SECONDS per cache) notes its use (note_key_used); a request served
    from the cache costs no further round trip for `last_used_at`, which stays exact to
    the minute."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 128:
        return None  # not ours: no database round trip
    digest = digest_of(secret)
    cache_key = _principal_cache_key(digest)
    principal = cache.get(cache_key)
    if principal is not None:
        return principal
    row = (
        IngestKey.objects.filter(
            secret_hash=digest, revoked_at__isnull=True, workspace__is_deleted=False
        )
        .values_list("pk", "workspace_id", "prefix")
        .first()
    )
    if row is None:
        return None  # not cached: unknown secrets must not fill the cache
    principal = KeyPrincipal(*row)
    cache.set(cache_key, principal, settings.INGEST_KEY_CACHE_SECONDS)
    note_key_used(principal.key_id)
    return principal


def note_key_used(key_id: uuid.UUID, now: datetime | None = None) -> None:
    """Keep `last_used_at` to the minute without a write per request: at most one write per
    key per minute per cache (cache.add is the gate), and the update is conditional."""
    if not cache.add(f"analytics:ingest-key-used:{key_id}", 1, timeout=60):
        return
    now = now or timezone.now()
    IngestKey.objects.filter(pk=key_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
