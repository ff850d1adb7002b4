"""Idempotency-Key under concurrency and crashes, on PostgreSQL: real connections (one per
thread), a real gunicorn killed with SIGKILL. To hold a first request in the middle of its
work, the test takes a table lock that the request's INSERT waits for — no code is patched:
the request is inside its transaction, holding its key, exactly as a slow one would be."""

import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from apps.accounts.services import issue_tokens
from apps.analytics.models import AnalyticsEvent, EventRollup
from apps.analytics.tests.factories import event
from apps.campaigns.models import Campaign
from apps.common import idempotency
from apps.common.models import IdempotencyRecord
from apps.common.testing import race, wait_until

pytestmark = pytest.mark.postgres

CAMPAIGNS = "/api/v1/campaigns"
KEY = "HTTP_IDEMPOTENCY_KEY"
BODY = {
    "name": "Spring sale",
    "target": {"topic": "news"},
    "contents": [{"title": "Spring is here", "subtitle": "Everything 20% off"}],
}


def replayed(response) -> bool:
    return response.headers.get(idempotency.REPLAYED_HEADER) == "true"


def code_of(response) -> str | None:
    return response.json().get("error", {}).get("code")


def backends_waiting_on_a_lock(table: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


class Held:
    """A table lock the test holds (SHARE: readers pass, INSERTs wait)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.atomic = transaction.atomic()

    def __enter__(self):
        self.atomic.__enter__()
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{self.table}" IN SHARE MODE')
        return self

    def __exit__(self, *exc):
        return self.atomic.__exit__(*exc)


def in_thread(pool, request):
    """Run `request()` on its own thread (so its own database connection)."""

    def run():
        try:
            return request()
        finally:
            connection.close()

    return pool.submit(run)


@pytest.fixture
def owner_client(transactional_db, owner, workspace):
    def _client():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_tokens(owner)['access']}")
        client.defaults["HTTP_X_WORKSPACE_ID"] = str(workspace.pk)
        return client

    return _client


def test_a_duplicate_while_the_first_runs_is_a_409_at_once(owner_client, workspace):
    table = Campaign._meta.db_table
    with ThreadPoolExecutor(2) as pool:
        with Held(table):
            first = in_thread(pool, lambda: owner_client().post(CAMPAIGNS, BODY, **{KEY: "k"}))
            wait_until(lambda: backends_waiting_on_a_lock(table), what="the first to be running")
            # Answered while the first is still held: not queued behind it.
            second = in_thread(pool, lambda: owner_client().post(CAMPAIGNS, BODY, **{KEY: "k"}))
            second = second.result(timeout=15)
            assert second.status_code == 409, second.content
            assert code_of(second) == "IDEMPOTENCY_REQUEST_IN_PROGRESS"
            # Another key is another operation: it is not refused (it waits like any write).
            other = in_thread(pool, lambda: owner_client().post(CAMPAIGNS, BODY, **{KEY: "o"}))
            wait_until(lambda: len(backends_waiting_on_a_lock(table)) == 2, what="the other")
        first, other = first.result(timeout=15), other.result(timeout=15)
    assert first.status_code == other.status_code == 201
    assert not replayed(first) and not replayed(other)
    third = owner_client().post(CAMPAIGNS, BODY, **{KEY: "k"})
    assert third.status_code == 201 and replayed(third) and third.content == first.content
    assert Campaign.objects.filter(workspace=workspace).count() == 2


def test_many_at_once_execute_once(owner_client, workspace):
    clients = [owner_client() for _ in range(6)]
    outcomes = race(*[lambda c=c: c.post(CAMPAIGNS, BODY, **{KEY: "burst"}) for c in clients])
    executed = [r for r in outcomes if r.status_code == 201 and not replayed(r)]
    others = [r for r in outcomes if r not in executed]
    assert len(executed) == 1, [(r.status_code, r.content) for r in outcomes]
    for response in others:
        assert (
            response.status_code,
            code_of(response) if response.status_code != 201 else None,
        ) in {
            (409, "IDEMPOTENCY_REQUEST_IN_PROGRESS"),
            (201, None),
        }
        if response.status_code == 201:
            assert replayed(response) and response.content == executed[0].content
    assert Campaign.objects.filter(workspace=workspace).count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_outside_the_request_transaction_a_duplicate_is_a_409_and_counts_once(
    transactional_db, ingest_key, workspace
):
    """POST /events commits its own transactions: the key is held by a session-level advisory
    lock, released after the answer is recorded."""
    table = AnalyticsEvent._meta.db_table
    batch = {"events": [event("e1"), event("e2", "clicked")]}

    def post(key="batch"):
        client = APIClient()
        client.credentials(HTTP_X_PUSHPILOT_KEY=ingest_key.secret)
        return client.post("/api/v1/events", batch, format="json", **{KEY: key})

    with ThreadPoolExecutor(2) as pool:
        with Held(table):
            first = in_thread(pool, post)
            wait_until(lambda: backends_waiting_on_a_lock(table), what="the first to be running")
            second = in_thread(pool, post).result(timeout=15)
            assert second.status_code == 409, second.content
            assert code_of(second) == "IDEMPOTENCY_REQUEST_IN_PROGRESS"
        first = first.result(timeout=15)
    assert first.status_code == 202 and first.json()["accepted"] == 2
    again = post()
    assert again.status_code == 202 and replayed(again)
    assert again.json() == first.json()
    assert AnalyticsEvent.objects.filter(workspace=workspace).count() == 2
    assert sum(EventRollup.objects.filter(workspace=workspace).values_list("count", flat=True)) == 2
    with connection.cursor() as cursor:  # no advisory lock is left behind on any connection
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert cursor.fetchone()[0] == 0


# --- a real server killed mid-request ---------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn(real_processes):
    port = _free_port()
    argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"]  # fmt: skip
    process = real_processes.start("gunicorn", argv, ready="Booting worker")
    base_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(base_url), what="gunicorn to answer")
    return process, base_url


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.redis
def test_a_server_killed_mid_request_leaves_nothing_and_the_retry_executes_once(
    real_processes, owner, workspace
):
    table = Campaign._meta.db_table
    headers = {
        "Authorization": f"Bearer {issue_tokens(owner)['access']}",
        "X-Workspace-ID": str(workspace.pk),
        "Idempotency-Key": "crash-1",
    }
    server, base_url = _gunicorn(real_processes)

    def send(url):
        return httpx.post(f"{url}{CAMPAIGNS}", json=BODY, headers=headers, timeout=30)

    outcome = {}

    def doomed():
        try:
            outcome["response"] = send(base_url)
        except httpx.HTTPError as exc:  # the server died under it: expected
            outcome["error"] = exc

    with Held(table):
        thread = threading.Thread(target=doomed)
        thread.start()
        wait_until(lambda: backends_waiting_on_a_lock(table), what="the request to be mid-way")
        (orphan,) = backends_waiting_on_a_lock(table)
        real_processes.kill(server)  # SIGKILL, the whole process group
        thread.join(timeout=15)
        assert "error" in outcome and "response" not in outcome

        # The dead request's transaction still holds its key: a retry now is told so.
        server, base_url = _gunicorn(real_processes)
        busy = send(base_url)
        assert busy.status_code == 409 and code_of(busy) == "IDEMPOTENCY_REQUEST_IN_PROGRESS"

    # Released, the orphaned backend finds its client gone and rolls back.
    def orphan_gone():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [orphan])
            return cursor.fetchone()[0] == 0

    wait_until(orphan_gone, what="the dead request's backend to end")
    assert not Campaign.objects.filter(workspace=workspace).exists()
    assert not IdempotencyRecord.objects.exists()

    retry = send(base_url)
    assert retry.status_code == 201, retry.content
    assert not replayed(retry)
    replay = send(base_url)
    assert replay.status_code == 201 and replayed(replay)
    assert replay.content == retry.content
    assert Campaign.objects.filter(workspace=workspace).count() == 1
