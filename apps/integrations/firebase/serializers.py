from rest_framework import serializers

from apps.integrations.firebase.models import FirebaseConfig


class FirebaseConfigSerializer(serializers.ModelSerializer):
    """What may be shown of a connection: never the service account."""

    class Meta:
        model = FirebaseConfig
        fields = [
            "project_id",
            "client_email",
            "key_fingerprint",
            "status",
            "last_tested_at",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class FirebaseConfigWriteSerializer(serializers.Serializer):
    project_id = serializers.RegexField(
        r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$",
        max_length=30,
        error_messages={
            "invalid": "A Firebase project id: 6-30 lowercase letters, digits, hyphens."
        },
    )
    service_account = serializers.JSONField(
        help_text="The service-account JSON downloaded from the Firebase console "
        "(Project settings > Service accounts > Generate new private key)."
    )


class FirebaseTestSerializer(serializers.Serializer):
    topic = serializers.CharField(
        required=False, max_length=900, help_text="Default: pushpilot-test"
    )
    title = serializers.CharField(required=False, max_length=200, default="PushPilot")
    body = serializers.CharField(required=False, max_length=1000, default="Firebase connected!")
    validate_only = serializers.BooleanField(required=False, default=False)


class FirebaseTestErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class FirebaseTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message_id = serializers.CharField(required=False)
    validate_only = serializers.BooleanField(required=False)
    error = FirebaseTestErrorSerializer(required=False)
