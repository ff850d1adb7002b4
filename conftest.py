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


# --- real infrastructure: PostgreSQL-only tests and a real Celery worker ------------------------
def pytest_collection_modifyitems(config, items):
    """`postgres` tests need PostgreSQL. Locally on SQLite they are skipped with the reason;
    in CI (CI=true) a missing PostgreSQL is a failure, never a silent skip."""
    import os

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    for item in items:
        if "postgres" in item.keywords:
            if os.environ.get("CI"):
                item.add_marker(
                    pytest.mark.xfail(reason="CI must run on PostgreSQL", strict=True, run=False)
                )
            else:
                item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))


@pytest.fixture
def worker_env():
    """Extra environment for real worker processes (override in a test module)."""
    return {}


@pytest.fixture
def start_celery_worker(transactional_db, tmp_path, worker_env):
    """Start real `celery worker` processes on Redis, sharing the test database.

    Returns a function that starts one more worker and returns its Popen (with `.log_path`).
    While any runs, eager mode is off: the test enqueues through the real broker, and the
    workers' writes are visible to the test's queries. All are stopped at teardown.
    """
    import os
    import subprocess
    import sys
    import time

    from config.celery import app

    if (
        not settings.REDIS_URL
        or settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    ):
        pytest.skip("a real worker needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    db = settings.DATABASES["default"]
    database_url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL,
           "PYTHONUNBUFFERED": "1", **worker_env}  # fmt: skip
    started: list = []
    app.conf.task_always_eager = False

    def start():
        log_path = tmp_path / f"worker-{len(started)}.log"
        log = open(log_path, "w")  # noqa: SIM115 (closed at teardown)
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", "notifications,default",
             "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "--hostname", f"test-{os.getpid()}-{len(started)}@%h"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
        )  # fmt: skip
        process.log_path, process.log_file = log_path, log
        started.append(process)
        deadline = time.monotonic() + 30
        while "ready." not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.1)
        return process

    yield start
    app.conf.task_always_eager = True
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        process.log_file.close()


@pytest.fixture
def celery_worker_process(start_celery_worker):
    """One real worker process (see start_celery_worker)."""
    return start_celery_worker()


# --- the fake FCM, over real HTTP ---------------------------------------------------------------
@pytest.fixture
def fake_fcm(settings):
    """A running fake FCM; FCM_BASE_URL points at it; token and HTTP caches start empty."""
    from apps.integrations.firebase.client import access_tokens, reset_http_client
    from apps.integrations.firebase.fake import FakeFCM

    with FakeFCM() as fake:
        settings.FCM_BASE_URL = fake.base_url
        access_tokens.clear()
        reset_http_client()
        yield fake
    access_tokens.clear()
    reset_http_client()


@pytest.fixture
def demo_account(fake_fcm):
    """A service account for `demo-project` that the fake FCM trusts."""
    from apps.integrations.firebase.fake import make_demo_service_account

    info = make_demo_service_account("demo-project", token_uri=fake_fcm.token_uri)
    fake_fcm.register_account(info)
    return info


@pytest.fixture
def connected_workspace(workspace, demo_account):
    """`workspace` with its Firebase connection stored, pointing at the fake FCM."""
    from apps.integrations.firebase.testing import make_firebase_config

    make_firebase_config(workspace, info=demo_account)
    return workspace
