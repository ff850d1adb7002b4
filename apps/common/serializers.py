import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.common.languages import MAX_TAG_LENGTH, normalize_language
from apps.common.timezones import is_known_timezone


def prohibit_null_keys(value):
    """For DictFields: PostgreSQL cannot store U+0000 in JSON, so a key holding it is a 400,
    not a 500 (DRF's CharField already refuses it in the values)."""
    if isinstance(value, dict) and any("\x00" in str(key) for key in value):
        raise serializers.ValidationError("Null characters are not allowed in keys.")


class TimeZoneField(serializers.CharField):
    """An IANA time-zone name such as `Europe/Paris`; anything else is a 400."""

    default_error_messages = {"unknown": "Unknown time zone '{value}'; use an IANA name."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not is_known_timezone(value):
            self.fail("unknown", value=value)
        return value


LOCAL_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"


# Not OpenAPI's `format: time`: RFC 3339 times carry an offset, and these are wall-clock times
# of any zone.
@extend_schema_field({"type": "string", "pattern": LOCAL_TIME_PATTERN, "example": "21:00"})
class LocalTimeField(serializers.TimeField):
    """A wall-clock time of day without a zone: `HH:MM` or `HH:MM:SS`, 24-hour."""

    default_error_messages = {"invalid": "Use HH:MM or HH:MM:SS (24-hour, without a zone)."}

    def to_internal_value(self, value):
        if not isinstance(value, str) or not re.match(LOCAL_TIME_PATTERN, value):
            self.fail("invalid")
        return super().to_internal_value(value)


class LanguageTagField(serializers.CharField):
    """A BCP 47 language tag such as `en`, `pt-BR` or `zh-Hant`, returned in its one
    spelling (`pt_br` -> `pt-BR`); anything else is a 400."""

    default_error_messages = {"invalid_tag": "'{value}' is not a BCP 47 language tag."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_TAG_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        tag = normalize_language(value)
        if tag is None:
            self.fail("invalid_tag", value=value)
        return tag


class OptionalURLField(serializers.URLField):
    """A URL a response may not have: `null` when absent (the schema says a URI or null),
    never an empty string, which is no URI."""

    pure_representation = True  # apps.common.fastread calls to_representation directly

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value or None


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, UPPER_SNAKE error code.")
    message = serializers.CharField()
    details = serializers.DictField(
        help_text="For VALIDATION_ERROR: field -> [messages]. Otherwise code-specific."
    )


class ErrorSerializer(serializers.Serializer):
    """The shape of every error response."""

    error = ErrorDetailSerializer()
