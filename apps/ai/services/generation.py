"""AI copy generation: the provider asked with retries, backoff and one repair attempt, and
every generation recorded (AIGeneration)."""

import json
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from apps.ai import content
from apps.ai.content import Brief
from apps.ai.errors import AIProviderError
from apps.ai.models import AIGeneration, GenerationStatus, Tone
from apps.ai.providers import (
    Completion,
    CompletionRequest,
    ContentProvider,
    ProviderFailure,
    get_provider,
)
from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import ValidationFailed
from apps.common.logging import get_logger
from apps.common.retry import backoff

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


OFFLINE_TRANSLATION_NOTICE = (
    "Not translated: PushPilot has no AI model configured, so the text is returned as it "
    "was. Set AI_API_KEY to use an AI provider, or write the translation yourself."
)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def backoff_delay(attempt: int) -> float:
    """Delay before retry number `attempt` (1-based): base·2^(attempt-1), capped, jittered."""
    return backoff(attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_MAX_SECONDS, jitter=(0.5, 1.0))


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
    return _recorded(workspace=workspace, brief=brief, user=user, provider=provider)


def translate_content(
    *,
    workspace,
    title: str,
    subtitle: str,
    language: str,
    user=None,
    provider: ContentProvider | None = None,
) -> AIGeneration:
    """Ask the configured provider to put a title and subtitle into `language` (a BCP 47
    tag), within the content limits, validated and recorded like generated copy (one
    variant). The offline provider does not translate: it returns the text unchanged, and
    `translated()` says so. Call it outside a transaction, like generation."""
    errors = {
        name: [f"{problem}: translations are plain text." for problem in problems]
        for name, value, limit in (("title", title, content.TRANSLATION_MAX_TITLE),
                                   ("subtitle", subtitle, content.TRANSLATION_MAX_SUBTITLE))
        if (problems := content.text_problems(name, content.clean_text(value), limit))
    }  # fmt: skip
    if errors:  # the reply must pass these rules too: a source that breaks them never would
        raise ValidationFailed(details=errors)
    brief = Brief(
        prompt=json.dumps({"title": title, "subtitle": subtitle}, ensure_ascii=False),
        tone=Tone.INFORMATIVE,  # unused by translation: the source's tone is kept
        language=language,
        max_title=content.TRANSLATION_MAX_TITLE,
        max_subtitle=content.TRANSLATION_MAX_SUBTITLE,
        task="translate",
    )
    return _recorded(workspace=workspace, brief=brief, user=user, provider=provider)


def translated(generation: AIGeneration) -> bool:
    return generation.task == "translate" and generation.provider != "offline"


def _recorded(*, workspace, brief: Brief, user, provider: ContentProvider | None) -> AIGeneration:
    """Run a brief through the provider (retries, one repair) and keep the record."""
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
            task=brief.task,
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
            f"ai.{'translation' if brief.task == 'translate' else 'generation'}."
            f"{'succeeded' if failure is None else 'failed'}",
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
    if generation.provider != "offline":
        return None
    return OFFLINE_TRANSLATION_NOTICE if generation.task == "translate" else OFFLINE_NOTICE
