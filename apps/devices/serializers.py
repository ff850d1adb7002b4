"""HTTP shapes of the device endpoints. Requests are validated by the registry service (the
same rules, hand-written for speed); these describe them in the OpenAPI schema."""

from rest_framework import serializers

from apps.common.fastread import FastReadMixin
from apps.devices import topics
from apps.devices.models import Device, DeviceStatus, Platform
from apps.devices.services.registry import (
    MAX_APP_TOPICS,
    MAX_APP_VERSION_LENGTH,
    MAX_DEVICES_PER_REQUEST,
)


class DeviceSerializer(serializers.Serializer):
    token = serializers.CharField(
        min_length=20, max_length=1024, help_text="The FCM registration token of this install."
    )
    time_zone = serializers.CharField(max_length=64, help_text="IANA name, e.g. Europe/Paris.")
    language = serializers.CharField(
        max_length=35, help_text="BCP 47 tag, e.g. en, pt-BR (en_US is read as en-US)."
    )
    platform = serializers.ChoiceField(choices=Platform.choices)
    app_version = serializers.CharField(
        max_length=MAX_APP_VERSION_LENGTH, required=False, allow_blank=True
    )
    topics = serializers.ListField(
        child=serializers.CharField(max_length=900),
        max_length=MAX_APP_TOPICS,
        required=False,
        help_text="The app's own topics for this install (the whole set: it replaces the "
        f"previous one). Names starting with `{topics.RESERVED_PREFIX}` are PushPilot's.",
    )


class DeviceBatchSerializer(serializers.Serializer):
    devices = DeviceSerializer(many=True, min_length=1, max_length=MAX_DEVICES_PER_REQUEST)


class RegisteredDeviceSerializer(serializers.Serializer):
    token_prefix = serializers.CharField(help_text="The token's first characters (never more).")
    created = serializers.BooleanField(help_text="Whether this token was new.")
    platform = serializers.CharField()
    time_zone = serializers.CharField()
    language = serializers.CharField(help_text="The device's language, normalized.")
    topics = serializers.ListField(
        child=serializers.CharField(),
        help_text="Every topic the device is put in: its app topics, its zone, language and "
        "bucket topics.",
    )


class DeviceErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the device in the batch.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="field -> [messages]",
    )


class RegisterResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Devices registered or updated.")
    created = serializers.IntegerField(help_text="Tokens new to the workspace.")
    updated = serializers.IntegerField(help_text="Tokens already registered, updated.")
    rejected = serializers.IntegerField(help_text="Invalid devices (described in `errors`).")
    errors = DeviceErrorSerializer(many=True)


class DeviceListSerializer(FastReadMixin, serializers.ModelSerializer):
    subscriptions = serializers.SerializerMethodField(
        help_text="`synced` when FCM confirmed every topic, `pending` while changes wait."
    )

    class Meta:
        model = Device
        fields = [
            "id", "token_prefix", "platform", "time_zone", "language", "app_version",
            "app_topics", "topics", "status", "retired_reason", "subscriptions", "sync_error",
            "last_seen_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_subscriptions(self, device) -> str:
        return "pending" if device.needs_sync else "synced"


class PlatformCountsSerializer(serializers.Serializer):
    android = serializers.IntegerField()
    ios = serializers.IntegerField()
    web = serializers.IntegerField()


class TopicAudienceSerializer(serializers.Serializer):
    topic = serializers.CharField()
    kind = serializers.ChoiceField(choices=topics.KINDS)
    devices = serializers.IntegerField()
    by_platform = PlatformCountsSerializer()


class EstimateQuerySerializer(serializers.Serializer):
    topic = serializers.CharField(required=False, max_length=900)
    condition = serializers.CharField(required=False, max_length=1000)


class EstimateSerializer(serializers.Serializer):
    topic = serializers.CharField(required=False)
    condition = serializers.CharField(required=False)
    devices = serializers.IntegerField(
        help_text="Active devices registered through PushPilot that the target reaches."
    )
    by_platform = PlatformCountsSerializer()


DEVICE_STATUSES = DeviceStatus.values
