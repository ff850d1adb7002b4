"""Test-wide wiring. Settings stay the real ones; only what makes tests fast and isolated
is changed here."""

import pytest
from django.conf import settings


def pytest_configure(config):
    # PBKDF2 at production strength costs ~0.3 s per hash; tests hash hundreds of passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from config.celery import app

    _own_redis_database_per_xdist_worker(app)
    # Tests run tasks in-process unless they start a real worker themselves.
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


def _own_redis_database_per_xdist_worker(app) -> None:
    """Under `pytest -n N` each worker clears the cache around every test and its real
    processes share a broker: on one Redis database the workers would clear each other's
    throttle counters and take each other's tasks. Worker gwK uses database base + 1 + K
    (REDIS_URL names the base; its real processes get the same URL)."""
    import os
    from urllib.parse import urlsplit, urlunsplit

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (settings.REDIS_URL and worker.startswith("gw")):
        return
    parts = urlsplit(settings.REDIS_URL)
    base = int(parts.path.strip("/") or 0)
    url = urlunsplit(parts._replace(path=f"/{base + 1 + int(worker[2:])}"))
    settings.REDIS_URL = url
    settings.CACHES["default"]["LOCATION"] = url
    settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url


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
    in CI (CI=true) a missing PostgreSQL is a failure, never a silent skip.

    Under `pytest -n N --dist loadgroup` (make test) the tests that start real processes all
    run on one xdist worker, one at a time as when serial: their timeouts were measured
    alone, and two bursts of real workers racing for two cores would be a test of the
    machine, not of the code."""
    import os

    for item in items:
        if "real_processes" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("real_processes"))
    if settings.USES_POSTGRES:
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
    """Extra environment for real processes (override in a test module)."""
    return {}


class RealProcesses:
    """Real PushPilot processes (Celery workers, dispatchers) on PostgreSQL + Redis, sharing
    the test database. Each runs in its own process group (a prefork worker's pool goes with
    it), logs to a file, and is stopped at teardown."""

    def __init__(self, tmp_path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.started: list = []

    def start(self, name: str, argv: list[str], *, ready: str, **env: str):
        import subprocess
        import time

        log_path = self.tmp_path / f"{name}-{len(self.started)}.log"
        log = open(log_path, "w")  # noqa: SIM115 (closed at teardown)
        process = subprocess.Popen(
            argv, env={**self.env, **{k: str(v) for k, v in env.items()}}, stdout=log,
            stderr=subprocess.STDOUT, cwd=settings.BASE_DIR, start_new_session=True,
        )  # fmt: skip
        process.name, process.log_path, process.log_file = name, log_path, log
        self.started.append(process)
        deadline = time.monotonic() + 60
        while ready not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.1)
        return process

    def worker(self, concurrency: int = 2, **env: str):
        import os
        import sys

        return self.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues",
             "notifications,default", "--concurrency", str(concurrency), "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--hostname", f"test-{os.getpid()}-{len(self.started)}@%h"],
            ready="ready.", **env,
        )  # fmt: skip

    def dispatcher(self, **env: str):
        import sys

        return self.start(
            "dispatcher", [sys.executable, "manage.py", "dispatch"], ready="dispatcher_started",
            **env,
        )  # fmt: skip

    @staticmethod
    def signal(process, signum) -> None:
        """Signal the whole process group (a prefork worker and its pool)."""
        import os

        os.killpg(process.pid, signum)

    def kill(self, process) -> None:
        import signal

        self.signal(process, signal.SIGKILL)
        process.wait()

    def alive(self, process) -> bool:
        return process.poll() is None

    def stop_all(self) -> None:
        import contextlib
        import signal
        import subprocess

        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.signal(process, signal.SIGCONT)
                    self.signal(process, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.signal(process, signal.SIGKILL)
                process.wait()
            process.log_file.close()


@pytest.fixture
def real_processes(transactional_db, tmp_path, worker_env):
    """Start real processes on PostgreSQL and Redis (see RealProcesses). While any run, eager
    mode is off: what the test enqueues goes through the real broker, and the processes'
    writes are visible to the test's queries."""
    import os

    from config.celery import app

    if (
        not settings.REDIS_URL
        or settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    ):
        pytest.skip("real processes need PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    db = settings.DATABASES["default"]
    database_url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL,
           "PYTHONUNBUFFERED": "1", **worker_env}  # fmt: skip
    processes = RealProcesses(tmp_path, env)
    app.conf.task_always_eager = False
    yield processes
    app.conf.task_always_eager = True
    processes.stop_all()


@pytest.fixture
def start_celery_worker(real_processes):
    """Start one more real `celery worker` process (see real_processes); returns its Popen."""
    return real_processes.worker


@pytest.fixture
def celery_worker_process(start_celery_worker):
    """One real worker process (see start_celery_worker)."""
    return start_celery_worker()


# --- the fake FCM, over real HTTP ---------------------------------------------------------------
# --- apps: no JWT, no workspace header, only an ingest key ------------------------------------
@pytest.fixture
def make_key(owner):
    from apps.analytics import services

    def _make(workspace, name="iOS app"):
        return services.create_ingest_key(workspace=workspace, actor=owner, name=name)

    return _make


@pytest.fixture
def ingest_key(make_key, workspace):
    return make_key(workspace)


@pytest.fixture
def app_client():
    """What an app is: no JWT, no workspace header, only its ingest key."""
    from rest_framework.test import APIClient

    def _client(secret: str):
        client = APIClient()
        client.credentials(HTTP_X_PUSHPILOT_KEY=secret)
        return client

    return _client


@pytest.fixture
def app(app_client, ingest_key):
    return app_client(ingest_key.secret)


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
