"""Where notification copy comes from, behind one small interface.

A provider turns a `CompletionRequest` (the validated brief plus the chat messages built
for it) into a `Completion` (reply text, usage). It makes exactly ONE attempt: retries,
backoff and the repair attempt belong to the service, which owns the policy. A failed
attempt raises `ProviderFailure`, which says whether trying again can help.

* `openai` — any OpenAI-compatible chat-completions endpoint through the official SDK.
* `offline` — the embedded default: deterministic copy written from the brief, no network.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import openai
from django.conf import settings

from apps.ai.content import CONTROL, HTML_TAG, Brief
from apps.common.retry import retry_after_seconds


@dataclass(frozen=True)
class CompletionRequest:
    brief: Brief
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ProviderFailure(Exception):
    """One failed attempt. `reason` is a stable code stored on the AIGeneration row;
    the message is ours, never the provider's text (which may echo the API key)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        upstream_code: str | None = None,
        problems: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.upstream_code = upstream_code
        # For unusable replies: what was wrong (our wording, not the reply itself).
        self.problems = problems or []


class ContentProvider(Protocol):
    name: str
    model: str

    def complete(self, request: CompletionRequest) -> Completion: ...


# --- openai -----------------------------------------------------------------------------------
SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI's own) or `Retry-After`, or None when
    absent or unreadable."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def _upstream_code(body) -> str | None:
    """The provider's short error code (e.g. `invalid_api_key`), if it is a plain token."""
    error = body.get("error") if isinstance(body, dict) else None
    code = (error or body).get("code") if isinstance(error or body, dict) else None
    if isinstance(code, str) and SAFE_CODE.match(code):
        return code
    return None


@lru_cache(maxsize=8)
def _client(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    # One client (and connection pool) per configuration; the SDK's own retries are off
    # because the service's loop decides when to retry and honours Retry-After itself.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float,
        json_mode: bool = True,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.json_mode = json_mode
        # Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the SDK requires one.
        self._api_key = api_key or "not-needed"

    def __repr__(self) -> str:  # the key stays out of reprs, tracebacks and logs
        return f"OpenAIProvider(base_url={self.base_url!r}, model={self.model!r})"

    def complete(self, request: CompletionRequest) -> Completion:
        extra = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        client = _client(self.base_url, self._api_key, self.timeout)
        try:
            response = client.chat.completions.create(
                model=self.model, messages=request.messages, **extra
            )
        except openai.APITimeoutError as exc:
            raise ProviderFailure(
                "timeout", f"The AI provider did not answer within {self.timeout:g} s.",
                retryable=True,
            ) from exc  # fmt: skip
        except openai.APIConnectionError as exc:
            raise ProviderFailure(
                "connection_error", "Could not connect to the AI provider.", retryable=True
            ) from exc
        except openai.APIStatusError as exc:
            raise self._status_failure(exc) from exc
        except ValueError as exc:  # a 200 whose body is not JSON
            raise ProviderFailure(
                "malformed_response", "The AI provider sent a response that is not JSON.",
                retryable=False,
            ) from exc  # fmt: skip
        choices = getattr(response, "choices", None) or []
        message = choices[0].message if choices else None
        text = getattr(message, "content", None)
        if not isinstance(text, str):
            raise ProviderFailure(
                "malformed_response", "The AI provider's response has no message content.",
                retryable=False,
            )  # fmt: skip
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            model=getattr(response, "model", None) or self.model,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            total_tokens=getattr(usage, "total_tokens", None),
        )

    @staticmethod
    def _status_failure(exc: openai.APIStatusError) -> ProviderFailure:
        status = exc.status_code
        upstream = _upstream_code(exc.body)
        if status == 429:
            return ProviderFailure(
                "rate_limited", "The AI provider is rate limiting requests.",
                retryable=True, status=status, upstream_code=upstream,
                retry_after=parse_retry_after(exc.response.headers),
            )  # fmt: skip
        if status >= 500:
            return ProviderFailure(
                "server_error", f"The AI provider failed with HTTP {status}.",
                retryable=True, status=status, upstream_code=upstream,
                retry_after=parse_retry_after(exc.response.headers),
            )  # fmt: skip
        reason = {401: "authentication_failed", 403: "permission_denied", 404: "not_found"}
        return ProviderFailure(
            reason.get(status, "client_error"),
            f"The AI provider refused the request with HTTP {status}.",
            retryable=False, status=status, upstream_code=upstream,
        )  # fmt: skip


# --- offline ----------------------------------------------------------------------------------
OFFLINE_MODEL = "pushpilot-offline-1"

# Leading phrases that ask for a notification rather than describe its subject.
REQUEST_PREFIX = re.compile(
    r"^(?:please\s+)?(?:(?:write|create|generate|draft|compose|make|send|give\s+me)\s+"
    r"(?:me\s+)?(?:an?\s+|some\s+|the\s+)?(?:short\s+|quick\s+)?(?:push\s+)?"
    r"(?:notifications?|push(?:es)?|messages?|copy|texts?|alerts?|reminders?)?\s*"
    r"(?:about|for|on|announcing|saying|that\s+says)?\s*"
    r"|(?:announce|promote)\s+"
    r"|(?:tell|let|remind|notify)\s+(?:our\s+|the\s+|all\s+)?"
    r"(?:users|people|customers|subscribers|everyone|players|members)\s+"
    r"(?:know\s+)?(?:that\s+|about\s+|to\s+)?)",
    re.IGNORECASE,
)
DASHES = "\u2013\u2014"  # en and em dash
TRAILING_WORDS = {
    "a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to",
    "until", "with", "your", "our", "-", "\u2014", "&",
}  # fmt: skip

# Per tone: (title pattern with {headline}, stand-alone title of at most 20 characters,
# subtitle closing line). Five rows, so five requested variants are five distinct titles.
OFFLINE_STYLE: dict[str, list[tuple[str, str, str]]] = {
    "friendly": [
        ("Good news: {headline}", "Good news for you", "Tap to take a look."),
        ("Hey! {headline}", "Hey, a quick update", "Come and see."),
        ("Just for you: {headline}", "Just for you", "We think you'll like it."),
        ("Heads-up: {headline}", "A friendly heads-up", "Open the app for details."),
        ("{headline} 🙂", "Something new", "Have a look when you can."),
    ],
    "professional": [
        ("{headline}", "An update for you", "Open the app for details."),
        ("Update: {headline}", "Account update", "Details are in the app."),
        ("Notice: {headline}", "Service notice", "Review it at your convenience."),
        ("For your attention: {headline}", "For your attention", "Open the app to learn more."),
        ("Now available: {headline}", "Now available", "See the details in the app."),
    ],
    "urgent": [
        ("Don't miss out: {headline}", "Don't miss out", "Act now before it's gone."),
        ("Last chance: {headline}", "Last chance", "Open the app now."),
        ("Hurry: {headline}", "Time is running out", "Don't wait: tap now."),
        ("Ending soon: {headline}", "Ending soon", "Tap before it's too late."),
        ("Act now: {headline}", "Act now", "Only a little time left."),
    ],
    "playful": [
        ("Psst… {headline}", "Psst… guess what?", "Go on, take a peek."),
        ("Guess what? {headline}", "Guess what?", "Your thumbs know what to do."),
        ("Plot twist: {headline}", "Plot twist!", "Tap for the good part."),
        ("Ooh! {headline}", "Ooh, look at this", "Curious? Tap in."),
        ("Knock knock: {headline}", "Knock knock!", "It's worth a tap."),
    ],
    "informative": [
        ("{headline}", "Here's what's new", "Open the app for the details."),
        ("New: {headline}", "What's new", "Tap for the full details."),
        ("FYI: {headline}", "For your information", "More in the app."),
        ("Did you know? {headline}", "Did you know?", "Learn more in the app."),
        ("Quick update: {headline}", "Quick update", "Open the app to read more."),
    ],
    "celebratory": [
        ("🎉 {headline}", "🎉 Time to celebrate", "Come celebrate with us."),
        ("Great news: {headline}!", "Great news!", "Tap to join the fun."),
        ("Cheers! {headline}", "Cheers to you!", "Let's celebrate together."),
        ("It's here: {headline}!", "It's finally here!", "Tap to see it."),
        ("Woohoo! {headline}", "Woohoo!", "Don't miss the celebration."),
    ],
}


# "Remind users to update their app" is about the reader: "Update your app".
READER_WORDS = {"their": "your", "they": "you", "them": "you", "they're": "you're"}
AUDIENCE_PREFIX = re.compile(r"^(?:please\s+)?(?:tell|let|remind|notify)\s", re.IGNORECASE)


FALLBACK_SUBJECT = "We have something new for you"
MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
MARKUP = re.compile(r"\*\*|__|`|^#{1,6}\s+|^>\s+|^[-*+]\s+")


EDGE_CHARS = f" :-{DASHES}\"'“”"


def _plain(text: str) -> str:
    """Plain text without leading/trailing clutter: notification copy may not carry markup
    or control bytes."""
    text = CONTROL.sub(" ", text)
    text = HTML_TAG.sub(" ", text)
    text = MARKDOWN_LINK.sub(r"\1", text)
    text = " ".join(text.split())
    previous = None
    while previous != text:  # markers can hide behind one another ("> - **Hi**")
        previous, text = text, MARKUP.sub("", text).strip(EDGE_CHARS)
    return text


def _subject(prompt: str) -> str:
    """The prompt without request phrasing, as a sentence that starts with a capital."""
    text = _plain(prompt)
    addressed_to_reader = bool(AUDIENCE_PREFIX.match(text))
    text = _plain(REQUEST_PREFIX.sub("", text, count=1)) or text
    if not text:
        return FALLBACK_SUBJECT
    if addressed_to_reader:
        text = " ".join(READER_WORDS.get(word.lower(), word) for word in text.split(" "))
    return text[:1].upper() + text[1:]


def _trim_words(text: str, limit: int) -> str:
    """At most `limit` characters, cut between words, without a dangling 'and'/'the'."""
    if len(text) <= limit:
        return text
    words = text[: limit + 1].split(" ")
    words = words[:-1] if len(words) > 1 else [text[:limit]]
    while len(words) > 1 and words[-1].lower().strip(",;:") in TRAILING_WORDS:
        words.pop()
    return " ".join(words).rstrip(f" ,;:-{DASHES}")


def _headline(subject: str, room: int, *, after_colon: bool = False) -> str:
    """A title-sized phrase: the first sentence of the subject, or its first clause when
    that is too long (or when the title already has a colon), shortened to `room`."""
    first_sentence = re.split(r"(?<=[.!?])\s", subject, maxsplit=1)[0].rstrip(".!?")
    if len(first_sentence) <= room and not (after_colon and ":" in first_sentence):
        return first_sentence
    clause = re.split(rf"\s*[:;,{DASHES}]\s*|\s+-\s+", first_sentence, maxsplit=1)[0]
    return _trim_words(clause, room)


def _sentence(text: str) -> str:
    return text if text[-1:] in ".!?…" else text + "."


class OfflineProvider:
    """Deterministic copy built from the brief: the same request always gets the same
    variants. It is not a language model: it rephrases the caller's own subject with the
    tone's openers and closings (in English) and always keeps within the limits."""

    name = "offline"
    model = OFFLINE_MODEL

    def complete(self, request: CompletionRequest) -> Completion:
        if request.brief.task == "translate":
            # No model, no translation: the text comes back as it was (the service says so).
            source = json.loads(request.brief.prompt)
            return Completion(text=json.dumps({"variants": [source]}), model=self.model)
        variants = self.write(request.brief)
        return Completion(text=json.dumps({"variants": variants}), model=self.model)

    def write(self, brief: Brief) -> list[dict[str, str]]:
        subject = _subject(brief.prompt)
        styles = OFFLINE_STYLE[brief.tone]
        # Start at a prompt-dependent row so that different briefs do not all open alike.
        start = int(hashlib.sha256(subject.encode()).hexdigest(), 16) % len(styles)
        variants: list[dict[str, str]] = []
        for offset in range(brief.n):
            pattern, standalone, closing = styles[(start + offset) % len(styles)]
            variants.append(
                {
                    "title": self._title(pattern, standalone, subject, brief.max_title),
                    "subtitle": self._subtitle(subject, closing, brief.max_subtitle),
                }
            )
        return variants

    @staticmethod
    def _title(pattern: str, standalone: str, subject: str, limit: int) -> str:
        room = limit - len(pattern.replace("{headline}", ""))
        after_colon = ":" in pattern
        headline = _headline(subject, room, after_colon=after_colon) if room >= 12 else ""
        # A headline of a word or two reads worse than the tone's own short title.
        if len(headline) >= 8:
            return pattern.format(headline=headline)
        return standalone

    @staticmethod
    def _subtitle(subject: str, closing: str, limit: int) -> str:
        body = _sentence(subject)
        if len(body) + 1 + len(closing) <= limit:
            return f"{body} {closing}"
        if len(body) <= limit:
            return body
        return _trim_words(subject, limit - 1) + "…"


# --- selection --------------------------------------------------------------------------------
def get_provider(name: str | None = None) -> ContentProvider:
    """The configured provider (settings.AI_PROVIDER unless `name` is given)."""
    name = name or settings.AI_PROVIDER
    if name == "offline":
        return OfflineProvider()
    if name == "openai":
        return OpenAIProvider(
            base_url=settings.AI_BASE_URL,
            api_key=settings.AI_API_KEY,
            model=settings.AI_MODEL,
            timeout=settings.AI_TIMEOUT_SECONDS,
            json_mode=settings.AI_JSON_MODE,
        )
    raise ValueError(f"Unknown AI_PROVIDER {name!r}; use 'openai' or 'offline'.")
