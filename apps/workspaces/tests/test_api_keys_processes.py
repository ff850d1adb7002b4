"""Revocation and rotation seen by every process at once: two real gunicorn servers on
PostgreSQL + Redis (CI runs these), each with its own worker process and memory. Both
serve the key first (anything they could cache is warm), then one revokes it and the
other refuses it on the very next request."""

import socket
import sys
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from apps.accounts.services import issue_tokens
from apps.workspaces.models import ApiKey, ApiKeyScope

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_servers(real_processes):
    urls = []
    for _ in range(2):
        port = free_port()
        real_processes.start(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--config",
             "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            ready="Booting worker",
        )  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}/api/v1")
    with httpx.Client(timeout=30) as first, httpx.Client(timeout=30) as second:
        yield (first, urls[0]), (second, urls[1])


def test_a_revoked_key_fails_on_every_process_at_once(two_servers, owner, workspace):
    (one, url_one), (two, url_two) = two_servers
    admin = {"Authorization": f"Bearer {issue_tokens(owner)['access']}",
             "X-Workspace-ID": str(workspace.pk)}  # fmt: skip
    created = one.post(f"{url_one}/api-keys", headers=admin,
                       json={"name": "CI", "scopes": [ApiKeyScope.CAMPAIGNS_READ]})  # fmt: skip
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["secret"]}
    # Both processes serve the key, several times (warm: connections, caches, anything).
    for _ in range(3):
        assert one.get(f"{url_one}/campaigns", headers=key).status_code == 200
        assert two.get(f"{url_two}/campaigns", headers=key).status_code == 200
    assert ApiKey.objects.get().last_used_at is not None  # written by a server process

    assert (
        one.delete(f"{url_one}/api-keys/{created.json()['id']}", headers=admin).status_code == 204
    )
    refused = two.get(f"{url_two}/campaigns", headers=key)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert one.get(f"{url_one}/campaigns", headers=key).status_code == 401


def test_a_rotated_secret_ends_with_its_grace_on_every_process(two_servers, owner, workspace):
    (one, url_one), (two, url_two) = two_servers
    admin = {"Authorization": f"Bearer {issue_tokens(owner)['access']}",
             "X-Workspace-ID": str(workspace.pk)}  # fmt: skip
    created = one.post(f"{url_one}/api-keys", headers=admin,
                       json={"name": "CI", "scopes": [ApiKeyScope.CAMPAIGNS_READ]}).json()  # fmt: skip
    old = {"X-API-Key": created["secret"]}
    assert two.get(f"{url_two}/campaigns", headers=old).status_code == 200
    rotated = two.post(f"{url_two}/api-keys/{created['id']}/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new = {"X-API-Key": rotated.json()["secret"]}
    for client, url in ((one, url_one), (two, url_two)):
        assert client.get(f"{url}/campaigns", headers=old).status_code == 200  # grace
        assert client.get(f"{url}/campaigns", headers=new).status_code == 200
    # The grace period ends (as if API_KEY_ROTATION_GRACE_SECONDS had passed).
    ApiKey.objects.filter(pk=created["id"]).update(
        previous_valid_until=timezone.now() - timedelta(seconds=1)
    )
    for client, url in ((one, url_one), (two, url_two)):
        assert client.get(f"{url}/campaigns", headers=old).status_code == 401
        assert client.get(f"{url}/campaigns", headers=new).status_code == 200
