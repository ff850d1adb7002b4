"""Fake OpenAI-compatible server: `python -m apps.ai.fake --port 8090` (see server.py)."""

from apps.ai.fake.control import FakeAIControl
from apps.ai.fake.server import DEFAULT_MODEL, FakeAIServer

__all__ = ["DEFAULT_MODEL", "FakeAIControl", "FakeAIServer"]
