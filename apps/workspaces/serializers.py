from rest_framework import serializers

from apps.common.serializers import TimeZoneField
from apps.workspaces.models import Invitation, Role, Workspace, WorkspaceMember


class WorkspaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = ["id", "name", "timezone", "created_at", "updated_at"]
        read_only_fields = fields


class WorkspaceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    timezone = TimeZoneField(required=False, default="UTC")


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
        help_text="Shown once. The invitee accepts with POST /invitations/{token}/accept.",
    )

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
