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
