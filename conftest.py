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


# --- shared fixtures: real users, real JWTs, real workspaces ------------------------------------
@pytest.fixture
def make_user(db):
    from apps.accounts.models import User

    counter = iter(range(1, 1_000_000))

    def _make(email: str | None = None, password: str = "Sturdy-Passw0rd!", **fields):
        email = email or f"user{next(counter)}@example.com"
        return User.objects.create_user(email=email, password=password, **fields)

    return _make


@pytest.fixture
def make_workspace(make_user):
    from apps.workspaces.services import create_workspace

    def _make(owner=None, name: str = "Acme", **fields):
        return create_workspace(owner=owner or make_user(), name=name, **fields)

    return _make


@pytest.fixture
def add_member():
    from apps.workspaces.models import WorkspaceMember

    def _add(workspace, user, role: str = "member"):
        return WorkspaceMember.objects.create(workspace=workspace, user=user, role=role)

    return _add


@pytest.fixture
def client_for():
    """An APIClient that authenticates with a real access token and, optionally, a workspace."""
    from rest_framework.test import APIClient

    from apps.accounts.services import issue_tokens

    def _client(user=None, workspace=None):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_tokens(user)['access']}")
        if workspace is not None:
            client.defaults["HTTP_X_WORKSPACE_ID"] = str(workspace.pk)
        return client

    return _client


@pytest.fixture
def owner(make_user):
    return make_user(email="owner@example.com", name="Olive Owner")


@pytest.fixture
def workspace(make_workspace, owner):
    return make_workspace(owner=owner, name="Acme")


@pytest.fixture
def api(client_for, owner, workspace):
    """The owner of `workspace`, authenticated, with X-Workspace-ID set."""
    return client_for(owner, workspace)


@pytest.fixture
def member_api(client_for, make_user, add_member, workspace):
    """A plain member of `workspace` (not an admin)."""
    user = make_user(email="member@example.com")
    add_member(workspace, user, "member")
    return client_for(user, workspace)
