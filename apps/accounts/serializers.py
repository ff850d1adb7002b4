from rest_framework import serializers

from apps.accounts.models import User
from apps.workspaces.serializers import WorkspaceSerializer


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "created_at"]
        read_only_fields = fields


class ProfileUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150, allow_blank=True)


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class RegisterResponseSerializer(TokenPairSerializer):
    user = UserSerializer()
    workspace = WorkspaceSerializer()


class GoogleSignInSerializer(serializers.Serializer):
    id_token = serializers.CharField(max_length=8192)


class AppleSignInSerializer(GoogleSignInSerializer):
    name = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        default="",
        help_text="Apple sends the user's name to the app only on the first sign-in.",
    )


class SignInResponseSerializer(TokenPairSerializer):
    user = UserSerializer()
    created = serializers.BooleanField()
