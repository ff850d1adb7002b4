"""HTTP shapes of webhooks (rules are in services)."""

from rest_framework import serializers

from apps.common.fastread import FastReadMixin
from apps.webhooks.models import ALL_EVENTS, WebhookAttempt, WebhookEndpoint, WebhookMessage
from apps.webhooks.services import EVENT_TYPES

EVENT_TYPE_HELP = (
    f'Event types to receive, or ["{ALL_EVENTS}"] for all: ' + ", ".join(EVENT_TYPES) + "."
)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    enabled = serializers.BooleanField(source="is_enabled")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "description", "event_types", "enabled", "disabled_reason",
            "disabled_at", "secret_rotated_at", "previous_secret_expires_at", "retry_at",
            "last_success_at", "last_failure_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        allow_null=True,
        help_text="The signing secret (whsec_…), shown only now: verify webhook-signature "
        "with it (any Standard Webhooks library does). Null in an idempotent replay (README, Idempotency keys): a secret is never stored.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="https URL of your receiver.")
    description = serializers.CharField(max_length=500, required=False, default="",
                                        allow_blank=True)  # fmt: skip
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=20,
        help_text=EVENT_TYPE_HELP,
    )  # fmt: skip


class WebhookEndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=20, required=False,
        help_text=EVENT_TYPE_HELP,
    )  # fmt: skip
    enabled = serializers.BooleanField(
        required=False, help_text="false disables the endpoint by hand; true enables it."
    )


class WebhookDeliverySerializer(FastReadMixin, serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "id", "message", "event_id", "event_type", "attempt", "outcome", "status_code",
            "latency_ms", "response_headers", "response_body", "error", "started_at",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"message": {"help_text": "The queued event (message) this attempt sent."}}


class WebhookMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookMessage
        fields = ["id", "event_id", "event_type", "status", "attempts", "created_at"]
        read_only_fields = fields
