"""AI copy generation and templates: every write and every rule of the `ai` app."""

import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.ai import content
from apps.ai.content import Brief
from apps.ai.errors import AIProviderError, DuplicateTemplateName
from apps.ai.models import AIGeneration, GenerationStatus, Template, TemplateSource
from apps.ai.providers import (
    Completion,
    CompletionRequest,
    ContentProvider,
    ProviderFailure,
    get_provider,
)
from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import Conflict, ValidationFailed
from apps.common.logging import get_logger
from apps.common.retry import backoff
from apps.integrations.firebase import validation as fcm

logger = get_logger("pushpilot.ai")

# Backoff between attempts: exponential from the base, capped, with jitter so that many
# clients failing together do not retry together. Tests shrink the base.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0
# A server may ask for a longer pause than a web request should wait: then we give up at
# once (502 with `retry_after` in the details) instead of holding a worker thread.
MAX_RETRY_AFTER_SECONDS = 20.0
# No retry (nor repair attempt) starts once this much time has gone by: a request ends
# within this budget plus one provider timeout, whatever the provider does.
DEADLINE_SECONDS = 60.0

OFFLINE_NOTICE = (
    "Generated offline: PushPilot wrote these from your prompt without an AI model "
    "(English openers and closings). Set AI_API_KEY to use an AI provider."
)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def backoff_delay(attempt: int) -> float:
    """Delay before retry number `attempt` (1-based): base·2^(attempt-1), capped, jittered."""
    return backoff(attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_MAX_SECONDS, jitter=(0.5, 1.0))


# --- generation -------------------------------------------------------------------------------
@dataclass
class _Run:
    """What happened during one generation, for the AIGeneration row."""

    attempts: int = 0
    repaired: bool = False
    started: float = field(default_factory=time.monotonic)
    model: str = ""
    usage: dict[str, int | None] = field(
        default_factory=lambda: {
            "prompt_tokens": None,
            "completion_tokens": None,
            "total_tokens": None,
        }
    )

    def past_deadline(self, wait: float = 0.0) -> bool:
        return time.monotonic() + wait - self.started > DEADLINE_SECONDS

    def add(self, completion: Completion) -> None:
        self.model = completion.model or self.model
        for key in self.usage:
            value = getattr(completion, key)
            if value is not None:
                self.usage[key] = (self.usage[key] or 0) + value


def _complete_with_retries(
    provider: ContentProvider, request: CompletionRequest, run: _Run
) -> Completion:
    """One logical call: retry what can succeed later, fail at once on everything else."""
    max_attempts = max(1, settings.AI_MAX_ATTEMPTS)
    for attempt in range(1, max_attempts + 1):
        run.attempts += 1
        try:
            completion = provider.complete(request)
        except ProviderFailure as failure:
            last = attempt == max_attempts
            too_long = (
                failure.retry_after is not None and failure.retry_after > MAX_RETRY_AFTER_SECONDS
            )
            logger.warning(
                "ai_attempt_failed",
                provider=provider.name,
                reason=failure.reason,
                status=failure.status,
                upstream_code=failure.upstream_code,
                attempt=attempt,
                retryable=failure.retryable,
                retry_after=failure.retry_after,
            )
            delay = backoff_delay(attempt)
            if failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
            if not failure.retryable or last or too_long or run.past_deadline(delay):
                raise
            _sleep(delay)
            continue
        run.add(completion)
        return completion
    raise AssertionError("unreachable: the loop returns or raises")


def _generate(provider: ContentProvider, brief: Brief, run: _Run) -> list[content.Variant]:
    messages = content.build_messages(brief)
    completion = _complete_with_retries(provider, CompletionRequest(brief, messages), run)
    outcome = content.parse_reply(completion.text, brief)
    if outcome.variants:
        return outcome.variants
    if run.past_deadline():
        raise ProviderFailure(
            "invalid_output",
            "The AI provider's reply was not usable and no time is left to repair it.",
            retryable=False,
            problems=outcome.problems,
        )
    # One repair attempt: show the model its reply and what was wrong with it.
    logger.info("ai_repair_attempt", provider=provider.name, problems=outcome.problems[:5])
    run.repaired = True
    repair = content.build_repair_messages(brief, messages, completion.text, outcome.problems)
    completion = _complete_with_retries(provider, CompletionRequest(brief, repair), run)
    repaired = content.parse_reply(completion.text, brief)
    if repaired.variants:
        return repaired.variants
    raise ProviderFailure(
        "invalid_output",
        "The AI provider's reply was not usable, even after a repair attempt.",
        retryable=False,
        problems=repaired.problems,
    )


def generate_notification_content(
    *,
    workspace,
    prompt: str,
    tone: str,
    n: int = 1,
    language: str | None = None,
    max_title: int | None = None,
    max_subtitle: int | None = None,
    user=None,
    provider: ContentProvider | None = None,
) -> AIGeneration:
    """Ask the configured provider for `n` notification variants and keep the record.

    Returns the succeeded AIGeneration (its `variants` are [{title, subtitle}]). On failure
    the failed AIGeneration is stored and AIProviderError (502) is raised. Call it outside a
    transaction (the API view is non-atomic): the row of a failed call must survive, and no
    database transaction should stay open during a slow network call.
    """
    brief = Brief(
        prompt=(prompt or "").strip(),
        tone=tone,
        n=n,
        language=language or None,
        max_title=max_title or content.DEFAULT_MAX_TITLE,
        max_subtitle=max_subtitle or content.DEFAULT_MAX_SUBTITLE,
    )
    errors = content.brief_errors(brief)
    if errors:
        raise ValidationFailed(details=errors)

    provider = provider or get_provider()
    run = _Run(model=provider.model)
    failure: ProviderFailure | None = None
    variants: list[content.Variant] = []
    try:
        variants = _generate(provider, brief, run)
    except ProviderFailure as exc:
        failure = exc
    latency_ms = int((time.monotonic() - run.started) * 1000)

    with transaction.atomic():
        generation = AIGeneration.objects.create(
            workspace=workspace,
            user=user_or_none(user),
            prompt=brief.prompt,
            tone=brief.tone,
            language=brief.language or "",
            n=brief.n,
            max_title=brief.max_title,
            max_subtitle=brief.max_subtitle,
            provider=provider.name,
            model=run.model[:200],
            status=GenerationStatus.FAILED if failure else GenerationStatus.SUCCEEDED,
            variants=[variant.as_dict() for variant in variants],
            attempts=run.attempts,
            repaired=run.repaired,
            latency_ms=latency_ms,
            error_code=failure.reason if failure else "",
            error_message=failure.message[:300] if failure else "",
            **run.usage,
        )
        audit.record(
            "ai.generation.succeeded" if failure is None else "ai.generation.failed",
            actor=user,
            workspace=workspace,
            target=generation,
            metadata={
                "provider": provider.name,
                "model": generation.model,
                "n": brief.n,
                "attempts": run.attempts,
                "error_code": generation.error_code,
            },
        )
    logger.info(
        "ai_generation",
        generation_id=str(generation.pk),
        provider=provider.name,
        model=generation.model,
        status=generation.status,
        attempts=run.attempts,
        repaired=run.repaired,
        latency_ms=latency_ms,
        error_code=generation.error_code or None,
    )
    if failure is not None:
        details = {
            "reason": failure.reason,
            "provider": provider.name,
            "attempts": run.attempts,
            "generation_id": str(generation.pk),
        }
        if failure.status is not None:
            details["upstream_status"] = failure.status
        if failure.upstream_code:
            details["upstream_code"] = failure.upstream_code
        if failure.retry_after is not None:
            details["retry_after"] = round(failure.retry_after, 3)
        if failure.problems:
            details["problems"] = failure.problems[:10]
        raise AIProviderError(failure.message, details=details)
    return generation


def offline_notice(generation: AIGeneration) -> str | None:
    return OFFLINE_NOTICE if generation.provider == "offline" else None


# --- templates --------------------------------------------------------------------------------
TAG = re.compile(r"^[a-z0-9][a-z0-9 _\-]{0,39}$")
MAX_TAGS = 20


def normalize_tags(tags) -> list[str]:
    """Lower-case, trimmed, de-duplicated (order kept); a bad tag is a 400."""
    if tags is None:
        return []
    if not isinstance(tags, list | tuple):
        raise ValidationFailed.on("tags", "Expected a list of strings.")
    result: list[str] = []
    for tag in tags:
        value = " ".join(str(tag).split()).lower() if isinstance(tag, str) else None
        if value is None or not TAG.match(value):
            raise ValidationFailed.on(
                "tags",
                "Each tag is 1 to 40 characters: letters, digits, spaces, '-' or '_'.",
            )
        if value not in result:
            result.append(value)
    if len(result) > MAX_TAGS:
        raise ValidationFailed.on("tags", f"At most {MAX_TAGS} tags.")
    return result


def validate_data(data) -> dict[str, str]:
    """A template's data payload obeys FCM's data rules (apps.integrations.firebase)."""
    if data is None:
        return {}
    try:
        return dict(fcm.validate_data(data))
    except fcm.MessageInvalid as exc:
        raise ValidationFailed.on("data", exc.message) from None


def _save_unique(template: Template, **save_kwargs) -> None:
    # A savepoint, so that the unique-name violation leaves the caller's transaction usable.
    try:
        with transaction.atomic():
            template.save(**save_kwargs)
    except IntegrityError as exc:
        raise DuplicateTemplateName(details={"name": [DuplicateTemplateName.message]}) from exc


@transaction.atomic
def create_template(
    *,
    workspace,
    actor=None,
    name: str,
    title: str,
    subtitle: str,
    image_url: str = "",
    data: dict | None = None,
    tags: list[str] | None = None,
    source: str = TemplateSource.MANUAL,
    generation: AIGeneration | None = None,
) -> Template:
    template = Template(
        workspace=workspace,
        name=name.strip(),
        title=title.strip(),
        subtitle=subtitle.strip(),
        image_url=image_url or "",
        data=validate_data(data),
        tags=normalize_tags(tags),
        source=source,
        generation=generation,
        created_by=user_or_none(actor),
    )
    _save_unique(template)
    audit.record(
        "template.created",
        actor=actor,
        workspace=workspace,
        target=template,
        metadata={"name": template.name, "source": source},
    )
    return template


TEMPLATE_EDITABLE = ("name", "title", "subtitle", "image_url", "data", "tags")


@transaction.atomic
def update_template(*, template: Template, actor=None, **changes) -> Template:
    unknown = set(changes) - set(TEMPLATE_EDITABLE)
    if unknown:
        raise ValueError(f"Not editable: {sorted(unknown)}")
    if "data" in changes:
        changes["data"] = validate_data(changes["data"])
    if "tags" in changes:
        changes["tags"] = normalize_tags(changes["tags"])
    for key in ("name", "title", "subtitle"):
        if key in changes:
            changes[key] = changes[key].strip()
    fields = [key for key in TEMPLATE_EDITABLE if key in changes]
    if not fields:
        return template
    for key in fields:
        setattr(template, key, changes[key] if changes[key] is not None else "")
    _save_unique(template, update_fields=[*fields, "updated_at"])
    audit.record(
        "template.updated",
        actor=actor,
        workspace=template.workspace,
        target=template,
        metadata={"fields": fields},
    )
    return template


@transaction.atomic
def delete_template(*, template: Template, actor=None) -> None:
    if template.mark_deleted():
        audit.record(
            "template.deleted",
            actor=actor,
            workspace=template.workspace,
            target=template,
            metadata={"name": template.name},
        )


def save_variant_as_template(
    *,
    generation: AIGeneration,
    variant_index: int,
    name: str,
    actor=None,
    tags: list[str] | None = None,
    image_url: str = "",
    data: dict | None = None,
) -> Template:
    """Keep one generated variant (0-based `variant_index`) as a template of its workspace."""
    if generation.status != GenerationStatus.SUCCEEDED or not generation.variants:
        raise Conflict("This generation failed; it has no variants to save.")
    if not 0 <= variant_index < len(generation.variants):
        raise ValidationFailed.on(
            "variant_index", f"Must be between 0 and {len(generation.variants) - 1}."
        )
    variant = generation.variants[variant_index]
    return create_template(
        workspace=generation.workspace,
        actor=actor,
        name=name,
        title=variant["title"],
        subtitle=variant["subtitle"],
        image_url=image_url,
        data=data,
        tags=tags,
        source=TemplateSource.AI,
        generation=generation,
    )


EXAMPLE_TEMPLATES: list[dict] = [
    {
        "name": "Welcome aboard",
        "title": "Welcome to the app! 👋",
        "subtitle": "Your account is ready. Take a quick tour and set things up your way.",
        "data": {"screen": "onboarding"},
        "tags": ["onboarding", "welcome"],
    },
    {
        "name": "Flash sale",
        "title": "Flash sale: 24 hours only ⚡",
        "subtitle": "Save on our most-loved picks until midnight. Tap to shop before it ends.",
        "data": {"screen": "sale"},
        "tags": ["promotion", "sale"],
    },
    {
        "name": "Abandoned cart reminder",
        "title": "You left something behind",
        "subtitle": "The items in your cart are still waiting. Complete your order in a tap.",
        "data": {"screen": "cart"},
        "tags": ["retention", "cart"],
    },
    {
        "name": "New feature announcement",
        "title": "New: a faster way to get things done",
        "subtitle": "We just shipped an update you asked for. Open the app to try it out.",
        "data": {"screen": "whats-new"},
        "tags": ["product", "announcement"],
    },
    {
        "name": "We miss you",
        "title": "It's been a while 💙",
        "subtitle": "A lot has changed since your last visit. Come back and see what's new.",
        "data": {"screen": "home"},
        "tags": ["re-engagement"],
    },
]


@transaction.atomic
def seed_example_templates(workspace, actor=None) -> list[Template]:
    """Give a new workspace a few ready-to-use templates. Idempotent: names that already
    exist in the workspace are left alone, so calling it twice creates nothing new."""
    existing = set(Template.objects.filter(workspace=workspace).values_list("name", flat=True))
    return [
        create_template(workspace=workspace, actor=actor, source=TemplateSource.EXAMPLE, **spec)
        for spec in EXAMPLE_TEMPLATES
        if spec["name"] not in existing
    ]
