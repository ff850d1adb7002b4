"""HTTP shapes of campaigns. Types and lengths only: the business rules (FCM target and
content rules, schedule semantics, what may change in which state) are in services."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.campaigns import recurrence
from apps.campaigns.models import (
    DELIVERY_OPTION_FIELDS,
    Campaign,
    CampaignContent,
    QuietHoursMode,
)
from apps.campaigns.services import MAX_CONTENTS
from apps.campaigns.state_machine import allowed_transitions
from apps.common.fastread import FastReadMixin
from apps.common.languages import normalize_language
from apps.common.serializers import (
    LocalTimeField,
    OptionalURLField,
    TimeZoneField,
    prohibit_null_keys,
)
from apps.devices import selectors as devices
from apps.notifications.models import Delivery


class WallClockDateTimeField(serializers.DateTimeField):
    """ISO 8601. With an offset it is an instant; without one it is wall-clock time in the
    campaign's time zone (kept naive here, resolved by the schedule rules)."""

    def enforce_timezone(self, value):
        return value


class TargetSerializer(serializers.Serializer):
    topic = serializers.CharField(
        required=False, allow_blank=True, max_length=900, help_text="An FCM topic name."
    )
    condition = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=1000,
        help_text="An FCM condition such as \"'news' in topics && !('muted' in topics)\" "
        "(at most 5 topics).",
    )


class TranslationSerializer(FastReadMixin, serializers.Serializer):
    title = serializers.CharField(max_length=200)
    subtitle = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class TranslationsField(serializers.DictField):
    """{"de": {"title", "subtitle"}, ...}: keys are language tags, written in their one
    spelling (`pt_br` -> `pt-BR`)."""

    child = TranslationSerializer()

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        tags = {}
        for key, text in value.items():
            tag = normalize_language(key)
            if tag is None:
                raise serializers.ValidationError({key: ["Not a BCP 47 language tag."]})
            tags[tag] = dict(text)
        return tags


class ContentSerializer(FastReadMixin, serializers.ModelSerializer):
    image_url = OptionalURLField()
    link = OptionalURLField()
    translations = serializers.DictField(
        child=TranslationSerializer(),
        help_text="Title and subtitle per other language of the workspace; devices of a "
        "language without one get the content's own text (the default language's).",
    )

    class Meta:
        model = CampaignContent
        fields = [
            "id",
            "position",
            "title",
            "subtitle",
            "image_url",
            "data",
            "link",
            "analytics_label",
            "translations",
        ]
        read_only_fields = fields


class ContentWriteSerializer(serializers.Serializer):
    id = serializers.UUIDField(
        required=False, help_text="Keep (and update) an existing content; omit to add one."
    )
    title = serializers.CharField(max_length=200)
    subtitle = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, help_text="Sent as the body."
    )
    image_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    data = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=4096),
        required=False,
        validators=[prohibit_null_keys],
        help_text="String -> string custom data delivered with the message.",
    )
    link = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    analytics_label = serializers.CharField(max_length=50, required=False, allow_blank=True)
    translations = TranslationsField(
        required=False,
        help_text="Title and subtitle per other language of the workspace "
        '(`{"de": {"title": "...", "subtitle": "..."}}`): each language then gets its own '
        "delivery, to `target && 'pushpilot-lang-<tag>' in topics`; devices in a language "
        "without a translation, or in none of the workspace's languages, get this content's "
        "own text (the workspace's default language).",
    )


class ExperimentSerializer(FastReadMixin, serializers.Serializer):
    metric = serializers.CharField(
        required=False, help_text="`opened` (default), `clicked` or `conversion:<name>`, over "
        "delivered.",
    )  # fmt: skip
    window_seconds = serializers.IntegerField(
        required=False, help_text="How long the variants are tested before the rest of the "
        "audience gets the chosen one (300 s to 7 days; default 3600).",
    )  # fmt: skip
    buckets_per_variant = serializers.IntegerField(
        required=False, help_text="Tenths of the registered audience each variant is tested "
        "on (default 1); the rest gets the chosen content.",
    )  # fmt: skip
    fallback = serializers.IntegerField(
        required=False, help_text="Position of the content sent when no variant wins "
        "(default 0).",
    )  # fmt: skip
    min_sample = serializers.IntegerField(
        required=False, help_text="Deliveries each variant needs before a winner can be "
        "declared (default 100).",
    )  # fmt: skip


class CampaignSerializer(FastReadMixin, serializers.ModelSerializer):
    target = serializers.SerializerMethodField()
    contents = ContentSerializer(many=True, read_only=True, source="listed_contents")
    allowed_transitions = serializers.SerializerMethodField()
    experiment = ExperimentSerializer(allow_null=True, read_only=True)
    experiment_result = serializers.JSONField(
        read_only=True, allow_null=True,
        help_text="The experiment's decision once made: `winner`, `reason`, per variant "
        "`delivered`, `successes`, `rate` and its 95 % Wilson `interval`, the `comparisons`' "
        "p-values, `alpha` and the Bonferroni `threshold`.",
    )  # fmt: skip

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "description",
            "status",
            "allowed_transitions",
            "target",
            "contents",
            *DELIVERY_OPTION_FIELDS,
            "catch_up_window_seconds",
            "recipient_time_zone",
            "quiet_hours",
            "experiment",
            "experiment_result",
            "scheduled_at",
            "scheduled_local",
            "timezone",
            "rrule",
            "exclusion_dates",
            "next_run_at",
            "last_run_at",
            "approval_requested_by",
            "approval_requested_at",
            "approved_by",
            "approved_at",
            "rejection_reason",
            "created_by",
            "duplicated_from",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "scheduled_local": {
                "help_text": "The wall-clock anchor the schedule expands from, in `timezone`."
            },
            "exclusion_dates": {"help_text": "Local dates (YYYY-MM-DD) with no run."},
        }

    @extend_schema_field(TargetSerializer)
    def get_target(self, campaign: Campaign) -> dict[str, str]:
        return campaign.target

    def get_allowed_transitions(self, campaign: Campaign) -> list[str]:
        return allowed_transitions(campaign.status)


class AudienceEstimateSerializer(serializers.Serializer):
    devices = serializers.IntegerField()
    by_platform = serializers.DictField(child=serializers.IntegerField())


class CampaignDetailSerializer(CampaignSerializer):
    """One campaign, with who its target reaches now."""

    audience_estimate = serializers.SerializerMethodField(
        help_text="Active devices registered through PushPilot that the target reaches now, "
        "in total and per platform (see GET /audience/estimate)."
    )

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "audience_estimate"]
        read_only_fields = fields

    @extend_schema_field(AudienceEstimateSerializer)
    def get_audience_estimate(self, campaign: Campaign) -> dict:
        return devices.audience_of(workspace_id=campaign.workspace_id, target=campaign.target)


class CampaignWriteSerializer(serializers.ModelSerializer):
    """Input only (services write the rows): the delivery options take their types and limits
    from the model's fields."""

    target = TargetSerializer(help_text="Exactly one of topic or condition.")
    contents = ContentWriteSerializer(many=True, required=False, max_length=MAX_CONTENTS)
    experiment = ExperimentSerializer(
        required=False, allow_null=True,
        help_text="An A/B test of the contents (2 to 4; each is a variant): each variant is "
        "sent to `buckets_per_variant` tenths of the registered audience at the run time; "
        "after `window_seconds` the best rate of `metric` wins if it beats every other "
        "variant (two-proportion z-test, alpha 0.05, Bonferroni) with `min_sample` "
        "deliveries each — else the `fallback` content — and goes to the rest of the "
        "audience. One-off campaigns sent at one instant, without translations.",
    )  # fmt: skip
    scheduled_at = WallClockDateTimeField(
        required=False,
        allow_null=True,
        help_text="First run. With an offset: that instant. Without: wall-clock time in "
        "`timezone`.",
    )
    timezone = TimeZoneField(
        required=False, help_text="IANA name; defaults to the workspace's time zone."
    )
    rrule = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=recurrence.MAX_RULE_LENGTH,
        help_text="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10 (HOURLY at most).",
    )
    exclusion_dates = serializers.ListField(
        child=serializers.DateField(),
        required=False,
        max_length=recurrence.MAX_EXCLUSION_DATES,
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "description",
            "target",
            "contents",
            *DELIVERY_OPTION_FIELDS,
            "catch_up_window_seconds",
            "recipient_time_zone",
            "quiet_hours",
            "experiment",
            "scheduled_at",
            "timezone",
            "rrule",
            "exclusion_dates",
        ]
        extra_kwargs = {
            "description": {"max_length": 10_000},
            "quiet_hours": {
                "help_text": "A delivery inside the workspace's quiet hours: `defer` (default) "
                "sends it when they end, `skip` records it as skipped, `ignore` sends it "
                "anyway (admins and owners only: transactional messages)."
            },
            "recipient_time_zone": {
                "help_text": "Deliver at the schedule's wall-clock time in each recipient's "
                "own time zone (one delivery per zone with registered devices) instead of at "
                "one instant. The target may then name at most 4 topics (FCM allows 5 per "
                "condition; the zone takes one) and none of the `pushpilot-tz-` topics."
            },
            "catch_up_window_seconds": {
                "max_value": 7 * 24 * 3600,
                "help_text": "A run that starts later than this after its time (the service "
                "was down) is recorded as skipped instead of sent. Null: send however late. "
                "Default 3600.",
            },
        }

    def service_kwargs(self) -> dict[str, Any]:
        """validated_data in the services' vocabulary (target split into topic/condition)."""
        data = dict(self.validated_data)
        if "target" in data:
            target = data.pop("target")
            data["topic"] = target.get("topic") or ""
            data["condition"] = target.get("condition") or ""
        if "contents" in data:
            data["contents"] = [dict(item) for item in data["contents"]]
        if "rrule" in data:
            data["rrule"] = data["rrule"] or ""
        if data.get("experiment") is not None:
            data["experiment"] = dict(data["experiment"])
        return data


class ScheduleSerializer(serializers.Serializer):
    scheduled_at = WallClockDateTimeField(
        required=False,
        help_text="Overrides the stored start. With an offset: that instant. Without: "
        "wall-clock time in `timezone`.",
    )
    timezone = TimeZoneField(required=False)
    rrule = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=recurrence.MAX_RULE_LENGTH,
        help_text="Overrides the stored rule; an empty string makes it a one-off.",
    )
    exclusion_dates = serializers.ListField(
        child=serializers.DateField(), required=False, max_length=recurrence.MAX_EXCLUSION_DATES
    )


class OccurrenceSerializer(serializers.Serializer):
    utc = serializers.DateTimeField()
    local = serializers.CharField(help_text="ISO 8601 with the zone's offset at that instant.")


class OccurrencesSerializer(serializers.Serializer):
    timezone = serializers.CharField()
    rrule = serializers.CharField(allow_blank=True)
    occurrences = OccurrenceSerializer(many=True)


class OccurrencesQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=recurrence.MAX_OCCURRENCES_PER_QUERY
    )


class DeliverySerializer(FastReadMixin, serializers.ModelSerializer):
    """One delivery of an occurrence: where it goes, when, and what became of it."""

    # Annotated on each row by notification_selectors.deliveries_of.
    occurrence_at = serializers.DateTimeField(read_only=True)
    target = serializers.DictField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "campaign",
            "occurrence",
            "occurrence_at",
            "slice",
            "target",
            "run_at",
            "due_at",
            "status",
            "attempts",
            "claimed_at",
            "started_at",
            "finished_at",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DeliveriesQuerySerializer(serializers.Serializer):
    from_ = serializers.DateTimeField(
        required=False, help_text="Start of the range (default: now).", source="start"
    )
    to = serializers.DateTimeField(
        required=False, help_text="End of the range (default and at most: 31 days after the start)."
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields

    def validate(self, attrs):
        if attrs.get("to") and attrs.get("start") and attrs["to"] <= attrs["start"]:
            raise serializers.ValidationError({"to": ["Must be after `from`."]})
        return attrs


class PreviewDeliverySerializer(serializers.Serializer):
    occurrence = serializers.DateTimeField(help_text="The occurrence (UTC) it belongs to.")
    occurrence_local = serializers.CharField(
        help_text="Its wall-clock time, in the campaign's zone."
    )
    run_at = serializers.DateTimeField(help_text="When it is sent (UTC).")
    run_at_local = serializers.CharField(
        help_text="When it is sent, local time in its recipients' zone (the first of `zones`), "
        "else in the campaign's."
    )
    zones = serializers.ListField(
        child=serializers.CharField(),
        help_text="The recipients' zones it is for (delivered by recipient zone); empty: "
        "everyone at one instant.",
    )
    language = serializers.CharField(allow_null=True, help_text="Null: every language.")
    variant = serializers.CharField(
        allow_null=True,
        help_text="An experiment's content position, or `winner` (the rest of the audience, "
        "after the test window); null: every content.",
    )
    target = TargetSerializer()
    status = serializers.CharField(
        help_text="The delivery's status, or `unplanned` for one the planner will make when "
        "its occurrence comes within PLAN_HORIZON_SECONDS (computed with today's zones)."
    )
    audience_estimate = AudienceEstimateSerializer()


class DeliveriesPreviewSerializer(serializers.Serializer):
    timezone = serializers.CharField()
    truncated = serializers.BooleanField(help_text="More deliveries than the 500 listed.")
    deliveries = PreviewDeliverySerializer(many=True)


class DryRunErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="FCM's error code (INVALID_ARGUMENT, SENDER_ID_MISMATCH, ...), "
        "INVALID_ARGUMENT when PushPilot's own checks refuse the message, NOT_CHECKED beyond "
        "DRY_RUN_MAX_MESSAGES."
    )
    message = serializers.CharField()


class DryRunMessageSerializer(serializers.Serializer):
    content_id = serializers.UUIDField()
    position = serializers.IntegerField()
    ok = serializers.BooleanField(help_text="FCM accepted the message (validate_only).")
    error = DryRunErrorSerializer(allow_null=True)


class DryRunDeliverySerializer(serializers.Serializer):
    slice = serializers.CharField(
        help_text="Which part of the occurrence: zones, language, variant."
    )
    target = TargetSerializer()
    run_at = serializers.DateTimeField()
    run_at_local = serializers.CharField()
    zones = serializers.ListField(child=serializers.CharField())
    language = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    status = serializers.CharField(help_text="The stored delivery's status, or `unplanned`.")
    ok = serializers.BooleanField(help_text="Every message of this delivery is valid.")
    error = DryRunErrorSerializer(allow_null=True, help_text="The first message's error.")
    messages = DryRunMessageSerializer(many=True)


class DryRunSerializer(serializers.Serializer):
    occurrence = serializers.DateTimeField(help_text="The occurrence checked (UTC).")
    occurrence_local = serializers.CharField()
    ok = serializers.BooleanField(help_text="Every message of every delivery is valid.")
    messages = serializers.IntegerField(help_text="How many messages were built.")
    deliveries = DryRunDeliverySerializer(many=True)


class SendPolicySerializer(serializers.Serializer):
    """The workspace's send policies (README "Send policies"). PUT replaces them all: a
    field left out is cleared (no policy of that kind)."""

    quiet_hours_start = LocalTimeField(
        required=False, allow_null=True,
        help_text="Local time the quiet hours start (HH:MM[:SS]), with `quiet_hours_end`; a window "
        "that ends before it starts wraps midnight (21:00-08:00).",
    )  # fmt: skip
    quiet_hours_end = LocalTimeField(
        required=False, allow_null=True,
        help_text="Local time the quiet hours end (HH:MM[:SS]): deferred deliveries go then.",
    )  # fmt: skip
    quiet_hours_mode = serializers.ChoiceField(
        choices=QuietHoursMode.choices, required=False, default=QuietHoursMode.WORKSPACE,
        help_text="`workspace`: the window is judged in the workspace's time zone; "
        "`recipient`: in each recipient's (the zones of registered devices).",
    )  # fmt: skip
    frequency_cap_max_sends = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=10_000,
        help_text="At most this many sends to one topic in any rolling "
        "`frequency_cap_window_hours` (set both, or neither).",
    )  # fmt: skip
    frequency_cap_window_hours = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=24 * 31,
    )  # fmt: skip
    rate_limit_per_minute = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=1_000_000,
        help_text="Deliveries the engine starts per rolling minute for this workspace; the "
        "rest wait (other workspaces are not slowed). Null: no cap.",
    )  # fmt: skip
    approval_threshold = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**31 - 1,
        help_text="Campaigns whose audience estimate (devices) is over this need an admin's "
        "approval before they are scheduled. Null: no approvals.",
    )  # fmt: skip
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, default="",
        help_text="Why, for the campaign's author (kept on the campaign as `rejection_reason`).",
    )  # fmt: skip
