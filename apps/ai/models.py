from django.conf import settings
from django.db import models

from apps.common.fields import JSONField
from apps.common.models import BaseModel, SoftDeleteModel


class Tone(models.TextChoices):
    """The tones a caller may ask for. Each has a style note that goes into the prompt."""

    FRIENDLY = "friendly", "Friendly"
    PROFESSIONAL = "professional", "Professional"
    URGENT = "urgent", "Urgent"
    PLAYFUL = "playful", "Playful"
    INFORMATIVE = "informative", "Informative"
    CELEBRATORY = "celebratory", "Celebratory"


# The style note for each tone: the model reads it, and the API documentation shows it.
TONE_GUIDE: dict[str, str] = {
    Tone.FRIENDLY: "warm and conversational, like a helpful friend; no pressure",
    Tone.PROFESSIONAL: "clear, courteous and businesslike; no slang, no exclamation marks",
    Tone.URGENT: "time-sensitive and direct; make the deadline or consequence obvious",
    Tone.PLAYFUL: "light-hearted and witty; a little wordplay is welcome",
    Tone.INFORMATIVE: "neutral and factual; lead with the most useful fact",
    Tone.CELEBRATORY: "excited and congratulatory; celebrate the moment with the reader",
}


class GenerationStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class AIGeneration(BaseModel):
    """One call to POST /ai/generate, successful or not: the audit and cost record."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="ai_generations"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # "copy" (variants written from a prompt) or "translate" (a title and subtitle put into
    # `language`; `prompt` holds their JSON).
    task = models.CharField(max_length=16, default="copy")
    prompt = models.TextField()
    tone = models.CharField(max_length=20, choices=Tone.choices)
    language = models.CharField(max_length=35, blank=True)
    n = models.PositiveSmallIntegerField(default=1)
    max_title = models.PositiveSmallIntegerField()
    max_subtitle = models.PositiveSmallIntegerField()
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=GenerationStatus.choices)
    variants = JSONField(default=list, blank=True)
    # Calls made to the provider (retries and the repair attempt included) and whether
    # the repair attempt was needed.
    attempts = models.PositiveSmallIntegerField(default=0)
    repaired = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(default=0)
    # Summed over every call that reported usage; null when the provider reports none.
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Why it failed, as a stable machine code (timeout, rate_limited, invalid_output, ...),
    # plus our own one-line description; never the provider's raw text.
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "created_at"]),
            models.Index(fields=["workspace", "status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.status} {self.created_at:%Y-%m-%d %H:%M}"


class TemplateSource(models.TextChoices):
    MANUAL = "manual", "Written by hand"
    AI = "ai", "Saved from an AI generation"
    EXAMPLE = "example", "Seeded example"


class Template(SoftDeleteModel):
    """Reusable notification copy for a workspace."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="templates"
    )
    name = models.CharField(max_length=100)
    title = models.CharField(max_length=120)
    subtitle = models.CharField(max_length=500)
    image_url = models.URLField(max_length=2048, blank=True)
    # FCM data payload: string keys to string values.
    data = JSONField(default=dict, blank=True)
    # Lower-case labels; a JSON list so the same filter works on SQLite and PostgreSQL.
    tags = JSONField(default=list, blank=True)
    source = models.CharField(
        max_length=16, choices=TemplateSource.choices, default=TemplateSource.MANUAL
    )
    generation = models.ForeignKey(
        AIGeneration, null=True, blank=True, on_delete=models.SET_NULL, related_name="templates"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [
            # Deleted templates free their name for reuse.
            models.UniqueConstraint(
                fields=["workspace", "name"],
                condition=models.Q(is_deleted=False),
                name="ai_template_name_unique_alive",
            )
        ]
        indexes = [models.Index(fields=["workspace", "is_deleted", "name"])]

    def __str__(self) -> str:
        return self.name
