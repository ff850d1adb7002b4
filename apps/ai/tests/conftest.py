"""Fixtures for the AI tests: a real fake OpenAI-compatible server over HTTP, and settings
that point the `openai` provider at it (or select the offline provider)."""

import pytest

from apps.ai.fake import FakeAIControl, FakeAIServer
from apps.ai.services import generation

FAKE_API_KEY = "sk-fake-0123456789abcdefSECRET"
FAKE_MODEL = "fake-gpt"


@pytest.fixture(scope="session")
def fake_ai_server():
    with FakeAIServer(api_key=FAKE_API_KEY, model=FAKE_MODEL) as server:
        yield server


@pytest.fixture
def fast_backoff(monkeypatch):
    # Backoff between retries shrinks to milliseconds; a server's Retry-After still rules.
    monkeypatch.setattr(generation, "BACKOFF_BASE_SECONDS", 0.01)
    monkeypatch.setattr(generation, "BACKOFF_MAX_SECONDS", 0.05)


@pytest.fixture
def fake_ai(fake_ai_server, settings, fast_backoff) -> FakeAIControl:
    """The openai provider aimed at the fake; returns the fake's HTTP control client."""
    control = FakeAIControl(fake_ai_server.url)
    control.reset()
    settings.AI_PROVIDER = "openai"
    settings.AI_BASE_URL = fake_ai_server.base_url
    settings.AI_API_KEY = FAKE_API_KEY
    settings.AI_MODEL = FAKE_MODEL
    settings.AI_TIMEOUT_SECONDS = 0.5
    settings.AI_MAX_ATTEMPTS = 3
    yield control
    control.reset()


@pytest.fixture
def offline_ai(settings):
    settings.AI_PROVIDER = "offline"
