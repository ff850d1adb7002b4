from datetime import timedelta

import pytest
from django.utils import timezone


@pytest.fixture
def connected(workspace):
    """`workspace` with a connected Firebase project (a real encrypted demo config)."""
    from apps.integrations.firebase.testing import make_firebase_config

    make_firebase_config(workspace)
    return workspace


@pytest.fixture
def make_campaign(workspace, owner):
    from apps.campaigns import services

    def _make(ws=None, actor=None, **overrides):
        data = {
            "name": "Spring sale",
            "topic": "news",
            "contents": [{"title": "Spring is here", "subtitle": "Everything 20% off"}],
        }
        data.update(overrides)
        return services.create_campaign(workspace=ws or workspace, actor=actor or owner, **data)

    return _make


@pytest.fixture
def tomorrow():
    return (timezone.now() + timedelta(days=1)).replace(microsecond=0)
