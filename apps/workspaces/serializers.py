from django.utils import timezone
from rest_framework import serializers

from apps.common.serializers import LanguageTagField, TimeZoneField
from apps.workspaces.models import (
    MAX_WORKSPACE_LANGUAGES,
    ApiKey,
    ApiKeyScope,
    ApiKeyStatus,
    Invitation,
    Role,
    Workspace,
    WorkspaceMember,
)


class WorkspaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = [
            "id", "name", "timezone", "languages", "default_language", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class WorkspaceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    timezone = TimeZoneField(required=False, default="UTC")
    languages = serializers.ListField(
        child=LanguageTagField(),
        min_length=1,
        max_length=MAX_WORKSPACE_LANGUAGES,
        required=False,
        help_text="The languages the workspace writes its copy in (BCP 47 tags). Each "
        "registered device sits in the topic of the best of them for its own language.",
    )
    default_language = LanguageTagField(
        required=False,
        help_text="What devices whose language is none of `languages` get (added to "
        "`languages` when it is not one of them).",
    )

    def validate_languages(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each language once.")
        return value


class MemberUserSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()


class MemberSerializer(serializers.ModelSerializer):
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = WorkspaceMember
        fields = ["id", "user", "role", "status", "created_at", "updated_at"]
        read_only_fields = fields


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.EmailField(source="invited_by.email", read_only=True, default=None)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "expires_at", "invited_by", "created_at"]
        read_only_fields = fields


class InvitationCreatedSerializer(InvitationSerializer):
    token = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="Shown once. The invitee accepts with POST /invitations/{token}/accept."
        " Null in an idempotent replay (README, Idempotency keys): a secret is never stored.",
    )

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


# --- API keys ---------------------------------------------------------------------------------
class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(
        choices=ApiKeyStatus.choices,
        read_only=True,
        help_text="`active`, `expired` (past `expires_at`) or `revoked`.",
    )
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "scopes", "prefix", "status", "expires_at", "last_used_at",
            "created_at", "created_by", "rotated_at", "previous_prefix",
            "previous_valid_until", "revoked_at",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {
            "prefix": {"help_text": "The secret's first characters, to tell keys apart."},
            "last_used_at": {"help_text": "The last successful request, to the minute."},
            "previous_prefix": {"help_text": "The secret before the last rotation."},
            "previous_valid_until": {
                "help_text": "Until when the secret before the last rotation still works."
            },
        }


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    secret = serializers.CharField(
        allow_null=True,
        help_text="The key to send in the X-API-Key header. Shown only now: PushPilot stores "
        "its hash, not the key. Null in an idempotent replay (README, Idempotency keys): a secret is never stored.",
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text='What uses it, e.g. "CI pipeline".')
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        min_length=1,
        max_length=len(ApiKeyScope.choices),
        help_text="What the key may do; `<area>:write` includes `<area>:read`.",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the key stops working (optional)."
    )

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value
