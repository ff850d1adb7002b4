from rest_framework import serializers

from apps.ai import content
from apps.ai.models import TONE_GUIDE, AIGeneration, Template, Tone
from apps.common.serializers import LanguageTagField, OptionalURLField, prohibit_null_keys

TONE_HELP = "One of: " + "; ".join(f"`{tone}` — {guide}" for tone, guide in TONE_GUIDE.items())


class GenerateSerializer(serializers.Serializer):
    prompt = serializers.CharField(
        max_length=content.MAX_PROMPT_CHARS,
        help_text=(
            f"What the notification is about (1 to {content.MAX_PROMPT_CHARS} characters). "
            "Treated as data: instructions inside it do not change the rules."
        ),
    )
    tone = serializers.ChoiceField(choices=Tone.choices, help_text=TONE_HELP)
    n = serializers.IntegerField(
        min_value=content.MIN_VARIANTS,
        max_value=content.MAX_VARIANTS,
        default=1,
        help_text="How many variants (1 to 5).",
    )
    language = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=35,
        help_text="BCP 47 tag such as `en` or `pt-BR`; default: the prompt's language.",
    )
    max_title = serializers.IntegerField(
        required=False,
        min_value=content.TITLE_LIMIT_BOUNDS[0],
        max_value=content.TITLE_LIMIT_BOUNDS[1],
        help_text=f"Title limit in characters (default {content.DEFAULT_MAX_TITLE}).",
    )
    max_subtitle = serializers.IntegerField(
        required=False,
        min_value=content.SUBTITLE_LIMIT_BOUNDS[0],
        max_value=content.SUBTITLE_LIMIT_BOUNDS[1],
        help_text=f"Subtitle limit in characters (default {content.DEFAULT_MAX_SUBTITLE}).",
    )

    def validate_language(self, value):
        if value and not content.LANGUAGE_TAG.match(value):
            raise serializers.ValidationError("Use a BCP 47 language tag such as 'en' or 'pt-BR'.")
        return value or None


class VariantSerializer(serializers.Serializer):
    title = serializers.CharField()
    subtitle = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)


class GenerationResultSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The AIGeneration record; see /ai/generations.")
    variants = VariantSerializer(many=True)
    provider = serializers.CharField(help_text="`openai` or `offline`.")
    model = serializers.CharField()
    notice = serializers.CharField(
        allow_null=True, help_text="Set when the copy was written offline, without a model."
    )
    latency_ms = serializers.IntegerField()
    usage = UsageSerializer()


class AIGenerationSerializer(serializers.ModelSerializer):
    variants = VariantSerializer(many=True, read_only=True)

    class Meta:
        model = AIGeneration
        fields = [
            "id",
            "created_at",
            "user",
            "task",
            "prompt",
            "tone",
            "language",
            "n",
            "max_title",
            "max_subtitle",
            "provider",
            "model",
            "status",
            "variants",
            "attempts",
            "repaired",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "error_code",
            "error_message",
        ]
        read_only_fields = fields


class TemplateSerializer(serializers.ModelSerializer):
    image_url = OptionalURLField()
    data = serializers.DictField(child=serializers.CharField(allow_blank=True), read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Template
        fields = [
            "id",
            "name",
            "title",
            "subtitle",
            "image_url",
            "data",
            "tags",
            "source",
            "generation",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TemplateWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    title = serializers.CharField(max_length=120)
    subtitle = serializers.CharField(max_length=500)
    image_url = serializers.URLField(max_length=2048, required=False, allow_blank=True)
    data = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        validators=[prohibit_null_keys],
        help_text="FCM data payload: string keys to string values (at most 4 KB).",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=20,
        help_text="Labels for filtering; stored lower-case.",
    )


class SaveVariantSerializer(serializers.Serializer):
    variant_index = serializers.IntegerField(
        min_value=0, default=0, help_text="Which variant of the generation (0-based)."
    )
    name = serializers.CharField(max_length=100)
    image_url = serializers.URLField(max_length=2048, required=False, allow_blank=True)
    data = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        validators=[prohibit_null_keys],
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, max_length=20
    )


class TranslateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    subtitle = serializers.CharField(max_length=1000)
    language = LanguageTagField(help_text="The language to translate into (BCP 47).")


class TranslationResultSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The AIGeneration record; see /ai/generations.")
    language = serializers.CharField()
    title = serializers.CharField()
    subtitle = serializers.CharField()
    translated = serializers.BooleanField(
        help_text="False when no AI model is configured: the text came back unchanged."
    )
    provider = serializers.CharField()
    model = serializers.CharField()
    notice = serializers.CharField(allow_null=True)
