"""Test-wide wiring. Settings stay the real ones; only what makes tests fast and isolated
is changed here."""

import pytest
from django.conf import settings


def pytest_configure(config):
    # PBKDF2 at production strength costs ~0.3 s per hash; tests hash hundreds of passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from config.celery import app

    # Tests run tasks in-process unless they start a real worker themselves.
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters and cached reads must not leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
