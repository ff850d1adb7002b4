"""API keys: a workspace's credentials for server-to-server calls (`X-API-Key`).

The secret is shown once (create and rotate); only its SHA-256 is stored (apps/common/tokens:
the secrets are 256 random bits, so an unsalted hash is as good as a keyed one and lets a
lookup find the row by its hash; the hash read back is compared in constant time).

Every request reads its key from the database — one indexed query, no cache — so a revoke
or an expired grace period is seen by every process on the very next request.
Rotation keeps the previous secret valid for API_KEY_ROTATION_GRACE_SECONDS (one previous
secret: rotating again within the grace period ends the older one at once).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions

from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import Conflict, NotFound
from apps.common.tokens import digest_of, issue_secret
from apps.workspaces.errors import WorkspaceAccessDenied
from apps.workspaces.models import ApiKey
from apps.workspaces.selectors import parse_uuid

SECRET_PREFIX = "ppa_live_"
VISIBLE_CHARS = len(SECRET_PREFIX) + 8  # "ppa_live_" + 8 characters identify a key to humans
MAX_SECRET_LENGTH = 128
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedApiKey:
    """A key with its secret: returned once, by create and rotate."""

    key: ApiKey
    secret: str


class ApiKeyPrincipal:
    """`request.user` of a request made with an API key: authenticated, but not a User.

    Services get it as `actor`; `user_or_none` turns it into None for FK columns and the
    audit trail records the key itself (`api_key_id`, read by apps/common/audit.py)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    is_api_key = True

    def __init__(self, key: ApiKey) -> None:
        self.api_key = key
        self.api_key_id = key.pk
        self.pk = key.pk  # per-key throttle buckets (UserRateThrottle reads request.user.pk)
        self.workspace_id = key.workspace_id

    def __str__(self) -> str:
        return f"api key {self.api_key.prefix}…"


def _new_secret() -> tuple[str, str, str]:
    issued = issue_secret(SECRET_PREFIX)
    return issued.value, issued.value[:VISIBLE_CHARS], issued.digest


# --- writes -----------------------------------------------------------------------------------
def create_api_key(
    *, workspace, actor, name: str, scopes: list[str], expires_at: datetime | None = None
) -> IssuedApiKey:
    secret, prefix, digest = _new_secret()
    with transaction.atomic():
        key = ApiKey.objects.create(
            workspace=workspace,
            name=name,
            scopes=sorted(set(scopes)),
            prefix=prefix,
            secret_hash=digest,
            expires_at=expires_at,
            created_by=user_or_none(actor),
        )
        audit.record(
            "api_key.created",
            actor=actor,
            workspace=workspace,
            target=key,
            metadata={
                "name": name,
                "prefix": prefix,
                "scopes": key.scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return IssuedApiKey(key, secret)


def rotate_api_key(*, key: ApiKey, actor) -> IssuedApiKey:
    """A new secret; the current one stays valid for the grace period, then fails."""
    secret, prefix, digest = _new_secret()
    now = timezone.now()
    grace_until = now + timedelta(seconds=settings.API_KEY_ROTATION_GRACE_SECONDS)
    with transaction.atomic():
        # Conditional on the secret we read: of two concurrent rotations one wins, the
        # other is a 409 (it would otherwise hand out a secret that was never stored).
        changed = (
            ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True, secret_hash=key.secret_hash)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .update(
                secret_hash=digest,
                prefix=prefix,
                previous_secret_hash=key.secret_hash,
                previous_prefix=key.prefix,
                previous_valid_until=grace_until,
                rotated_at=now,
                updated_at=now,
            )
        )
        if not changed:
            raise Conflict(
                "Only an active key can be rotated (this one is revoked or expired, or it "
                "was rotated meanwhile)."
            )
        old_prefix = key.prefix
        key.refresh_from_db()
        audit.record(
            "api_key.rotated",
            actor=actor,
            workspace=key.workspace,
            target=key,
            metadata={
                "old_prefix": old_prefix,
                "prefix": prefix,
                "old_valid_until": grace_until.isoformat(),
            },
        )
    return IssuedApiKey(key, secret)


def revoke_api_key(*, key: ApiKey, actor) -> ApiKey:
    """Revoke for good, the current and any previous secret at once. Revoking a revoked key
    changes nothing (and writes no audit row)."""
    now = timezone.now()
    with transaction.atomic():
        if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=now, updated_at=now
        ):
            audit.record(
                "api_key.revoked",
                actor=actor,
                workspace=key.workspace,
                target=key,
                metadata={"prefix": key.prefix, "name": key.name},
            )
        key.refresh_from_db()
    return key


# --- authentication ---------------------------------------------------------------------------
def key_for_secret(secret: str, now: datetime | None = None) -> ApiKey:
    """The usable key this secret belongs to (its workspace loaded), else AuthenticationFailed
    (401) saying why — DRF's own exception, as this runs inside DRF's authentication. One
    query; deliberately no cache (see the module docstring)."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        raise exceptions.AuthenticationFailed("Invalid API key.")  # not ours: no query
    digest = digest_of(secret)
    key = (
        ApiKey.objects.select_related("workspace")
        .filter(Q(secret_hash=digest) | Q(previous_secret_hash=digest))
        .filter(workspace__is_deleted=False)
        .first()
    )
    if key is None:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    now = now or timezone.now()
    if key.revoked_at is not None:
        raise exceptions.AuthenticationFailed("This API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise exceptions.AuthenticationFailed("This API key has expired.")
    if not hmac.compare_digest(key.secret_hash, digest):
        previous = key.previous_secret_hash or ""
        if not hmac.compare_digest(previous, digest):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if key.previous_valid_until is None or key.previous_valid_until <= now:
            raise exceptions.AuthenticationFailed(
                "This API key's secret was rotated and its grace period is over; use the "
                "new secret."
            )
    return key


def note_used(key: ApiKey, now: datetime | None = None) -> None:
    """Keep `last_used_at` to the minute without a write per request: the row was just read,
    so a fresh value costs nothing; a stale one is moved by a conditional update (one
    process wins per minute). After commit: the request's transaction must not hold the
    key's row lock, and a request that failed (rolled back) is not a use."""
    now = now or timezone.now()
    if key.last_used_at is not None and key.last_used_at > now - LAST_USED_RESOLUTION:
        return
    key_id = key.pk
    transaction.on_commit(
        lambda: (
            ApiKey.objects.filter(pk=key_id)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION))
            .update(last_used_at=now)
        )
    )


def check_requested_workspace(key: ApiKey, requested_id, *, from_path: bool = False) -> None:
    """A key belongs to one workspace: a workspace asked for (X-Workspace-ID, ?workspace_id=
    or the URL) must be the key's own. Another one gets the answer a non-member gets."""
    if not requested_id:
        return  # optional with a key: the key names its workspace
    if parse_uuid(requested_id) != key.workspace_id:
        raise NotFound() if from_path else WorkspaceAccessDenied()
