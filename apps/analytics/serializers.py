"""HTTP shapes of analytics. The event batch is validated by apps.analytics.services (fast,
per event); EventSerializer/EventBatchSerializer document the same rules for OpenAPI."""

from rest_framework import serializers

from apps.analytics.models import AnalyticsEvent, IngestKey, Platform
from apps.analytics.services import MAX_EVENTS_PER_REQUEST
from apps.common.fastread import FastReadMixin


# --- ingest keys ------------------------------------------------------------------------------
class IngestKeySerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = IngestKey
        fields = [
            "id", "name", "prefix", "status", "created_at", "created_by", "last_used_at",
            "rotated_at", "revoked_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_status(self, key: IngestKey) -> str:
        return "active" if key.is_active else "revoked"


class IngestKeyWithSecretSerializer(IngestKeySerializer):
    secret = serializers.CharField(
        allow_null=True,
        help_text="The key to put in the app (header X-PushPilot-Key). Shown only now: "
        "PushPilot stores its hash, not the key. Null in an idempotent replay (README, Idempotency keys): a secret is never stored.",
    )

    class Meta(IngestKeySerializer.Meta):
        fields = [*IngestKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class IngestKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text='Which app uses it, e.g. "iOS app".')


# --- events (documentation of the batch; see services.ingest._validate) ------------------------------
class EventSerializer(serializers.Serializer):
    id = serializers.CharField(
        max_length=64,
        help_text="The client's id of this event (a UUID fits; letters, digits, . _ : -). "
        "An id already received for this workspace is ignored as a duplicate.",
    )
    type = serializers.CharField(
        max_length=61,
        help_text="delivered | opened | clicked | dismissed | conversion:<name> "
        "(name: 1 to 50 letters, digits, . _ -).",
    )
    notification_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The notification (from the push's data) that the event is about; its "
        "campaign and content are filled in.",
    )
    campaign_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="When the notification id is not known."
    )
    occurred_at = serializers.DateTimeField(
        help_text="With a UTC offset; at most a day ahead and EVENTS_MAX_AGE_DAYS (default "
        "30) days old."
    )
    platform = serializers.ChoiceField(choices=Platform.choices, required=False, allow_blank=True)
    properties = serializers.DictField(required=False, help_text="At most 4096 bytes of JSON.")


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class EventErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the batch.")
    id = serializers.CharField(allow_null=True)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="field -> [messages]",
    )


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="New events stored and counted.")
    duplicates = serializers.IntegerField(help_text="Events whose id was already received.")
    rejected = serializers.IntegerField(help_text="Invalid events (described in `errors`).")
    errors = EventErrorSerializer(many=True)


# --- stats ------------------------------------------------------------------------------------
class RatesSerializer(FastReadMixin, serializers.Serializer):
    failure_rate = serializers.FloatField(allow_null=True, help_text="failed / (sent + failed)")
    open_rate = serializers.FloatField(allow_null=True, help_text="opened / delivered")
    click_rate = serializers.FloatField(allow_null=True, help_text="clicked / delivered")
    click_through_rate = serializers.FloatField(allow_null=True, help_text="clicked / opened")
    dismiss_rate = serializers.FloatField(allow_null=True, help_text="dismissed / delivered")
    conversion_rate = serializers.FloatField(allow_null=True, help_text="conversions / delivered")


class CountsSerializer(FastReadMixin, serializers.Serializer):
    sent = serializers.IntegerField(
        help_text="Notifications FCM accepted (one per content per run)."
    )
    failed = serializers.IntegerField(help_text="Notifications that failed for good.")
    delivered = serializers.IntegerField(help_text="Reported by apps, one per device.")
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    dismissed = serializers.IntegerField()
    conversions = serializers.IntegerField(help_text="All conversion:<name> events.")


class CountsWithRatesSerializer(CountsSerializer):
    rates = RatesSerializer()


class TotalsSerializer(CountsWithRatesSerializer):
    conversions_by_name = serializers.DictField(child=serializers.IntegerField())


class ContentStatsSerializer(TotalsSerializer):
    content_id = serializers.UUIDField()
    position = serializers.IntegerField(allow_null=True)
    title = serializers.CharField(allow_null=True)
    deleted = serializers.BooleanField(help_text="The content was deleted after it was sent.")


class CampaignStatsSerializer(FastReadMixin, serializers.Serializer):
    campaign_id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    totals = TotalsSerializer()
    contents = ContentStatsSerializer(many=True)
    experiment = serializers.JSONField(
        allow_null=True,
        help_text="The A/B test's decision, once made (see the campaign's experiment_result).",
    )
    generated_at = serializers.DateTimeField(help_text="When these figures were computed.")


class CampaignAnalyticsSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    stats = CountsWithRatesSerializer()


class OverviewQuerySerializer(serializers.Serializer):
    # `from` is a keyword: declared through the fields mapping below.
    to = serializers.CharField(required=False, help_text="ISO 8601 date (inclusive) or time.")
    interval = serializers.ChoiceField(choices=["hour", "day"], default="day")
    timezone = serializers.CharField(
        required=False, help_text="IANA zone of the buckets; default the workspace's."
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(
            required=False,
            help_text="ISO 8601 date or time (without an offset: local). Default: 24 hours "
            "(hour) or 7 days (day) before `to`.",
        )
        return fields


class SeriesPointSerializer(CountsSerializer):
    start = serializers.DateTimeField(help_text="The bucket's start (UTC).")
    local_start = serializers.CharField(help_text="The bucket's start in local time, ISO 8601.")


class OverviewSerializer(FastReadMixin, serializers.Serializer):
    totals = TotalsSerializer()
    series = SeriesPointSerializer(many=True)
    interval = serializers.CharField()
    timezone = serializers.CharField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(help_text="Start of the first bucket.")
        fields["to"] = serializers.DateTimeField(help_text="End of the last bucket.")
        return fields


class StoredEventSerializer(FastReadMixin, serializers.ModelSerializer):
    """One stored event as the app reported it (ids resolved), for GET /analytics/events."""

    id = serializers.CharField(source="event_id", help_text="The app's event id.")
    received_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = AnalyticsEvent
        fields = [
            "id",
            "type",
            "occurred_at",
            "notification_id",
            "campaign_id",
            "content_id",
            "platform",
            "properties",
            "received_at",
        ]
        read_only_fields = fields
