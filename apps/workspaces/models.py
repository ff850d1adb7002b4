from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.common.fields import JSONField
from apps.common.models import BaseModel, SoftDeleteModel


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


# owner > admin > member: a role satisfies every requirement at or below its rank.
ROLE_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_at_least(role: str, required: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(required)]


MAX_WORKSPACE_LANGUAGES = 30


def default_languages() -> list[str]:
    return ["en"]


class Workspace(SoftDeleteModel):
    name = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="UTC")
    # The languages its copy is written in (normalized BCP 47 tags): each device is put in
    # the topic of the best of them for its own language, or of the default language.
    languages = JSONField(default=default_languages)
    default_language = models.CharField(max_length=35, default="en")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.name


class MemberStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REMOVED = "removed", "Removed"


class WorkspaceMember(BaseModel):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(
        max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "user"], name="member_unique_per_workspace"
            )
        ]
        indexes = [models.Index(fields=["user", "status"])]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id} as {self.role}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"


class Invitation(BaseModel):
    """A single-use, expiring invitation. Only the SHA-256 of the token is stored."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.PENDING
    )
    expires_at = models.DateTimeField()
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "status"])]

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


# --- API keys -------------------------------------------------------------------------------------
class ApiKeyScope(models.TextChoices):
    """What an API key may do. `<area>:write` includes `<area>:read` (see scope_grants)."""

    CAMPAIGNS_READ = "campaigns:read", "Read campaigns, their deliveries and notifications"
    CAMPAIGNS_WRITE = "campaigns:write", "Create, edit, schedule, cancel and delete campaigns"
    TEMPLATES_READ = "templates:read", "Read templates"
    TEMPLATES_WRITE = "templates:write", "Create, edit and delete templates"
    AI_READ = "ai:read", "Read AI generations"
    AI_WRITE = "ai:write", "Generate and translate copy with AI"
    ANALYTICS_READ = "analytics:read", "Read stats and dashboards"
    DEVICES_READ = "devices:read", "Read the audience: devices, topics, estimates"
    DEVICES_WRITE = "devices:write", "Register and delete devices (server-side registration)"
    AUDIT_READ = "audit:read", "Read the audit log"


def scope_grants(held: str, required: str) -> bool:
    """True when a key holding `held` may use a route that needs `required`: the same scope,
    or the write scope of the same area (whoever may change a thing may read it)."""
    if held == required:
        return True
    area, _, level = required.partition(":")
    return level == "read" and held == f"{area}:write"


class ApiKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class ApiKey(BaseModel):
    """A workspace's credential for server-to-server calls (`X-API-Key`), limited to scopes.

    Only the SHA-256 of the secret is stored; `prefix` (its first characters) tells keys
    apart. Rotating gives the key a new secret and keeps the previous one valid until
    `previous_valid_until` (API_KEY_ROTATION_GRACE_SECONDS); revoking ends both at once.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scopes = JSONField(default=list)
    prefix = models.CharField(max_length=32)
    secret_hash = models.CharField(max_length=64, unique=True)
    # The secret before the last rotation, valid for the grace period only.
    previous_prefix = models.CharField(max_length=32, blank=True)
    previous_secret_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "created_at"], name="apikey_ws_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE
