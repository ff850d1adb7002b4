from rest_framework import serializers

from apps.common.fastread import FastReadMixin
from apps.notifications.models import Notification


class NotificationSerializer(FastReadMixin, serializers.ModelSerializer):
    job = serializers.UUIDField(
        source="delivery_id", read_only=True, help_text="Deprecated: the same as `delivery`."
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "campaign",
            "delivery",
            "job",
            "content",
            "position",
            "title",
            "body",
            "status",
            "fcm_message_id",
            "error_code",
            "error_message",
            "sent_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
