"""End-to-end smoke test: the real processes, driven through HTTP only.

    python scripts/smoke.py            (or `make smoke`)

Starts PushPilot the way `make run` does (gunicorn, a Celery worker, the dispatcher and the
fake FCM) against whatever DATABASE_URL / REDIS_URL say — PostgreSQL + Redis in CI — then:
register -> connect Firebase (a demo service account) -> generate copy -> create a campaign
-> schedule it 3 s ahead -> the fake FCM receives it -> stats show it sent -> an app reports
an open -> stats show it. Prints each step; exits non-zero at the first failure.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.integrations.firebase.fake import make_demo_service_account  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmokeFailed(Exception):
    pass


def step(title: str):
    print(f"-> {title}", flush=True)


def expect(response: httpx.Response, status: int) -> dict:
    if response.status_code != status:
        raise SmokeFailed(
            f"{response.request.method} {response.request.url.path}: expected {status}, got "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else {}


def wait_for(what: str, check, timeout: float = 30.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise SmokeFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def connected_account(base: str, fake: str, name: str) -> tuple[httpx.Client, dict]:
    """A new user's API client (its token and workspace in the headers), with a Firebase
    project the fake FCM trusts connected; and the connection as the API answered it."""
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
    email = f"{name}-{int(time.time())}@example.com"
    body = expect(
        api.post("/auth/register", json={"email": email, "password": "Smoke-Test-Passw0rd!"}), 201
    )
    api.headers.update(
        {"Authorization": f"Bearer {body['access']}", "X-Workspace-ID": body["workspace"]["id"]}
    )
    account = make_demo_service_account(f"{name}-project", token_uri=f"{fake}/token")
    httpx.post(f"{fake}/_fake/accounts", json=account, timeout=10).raise_for_status()
    config = expect(
        api.put(
            "/integrations/firebase",
            json={"project_id": f"{name}-project", "service_account": account},
        ),
        200,
    )
    return api, config


def run(base: str, fake: str) -> None:
    wait_for("PushPilot to be ready", lambda: answers_200(f"{base}/readyz"), timeout=60)

    step("register, and connect Firebase with a demo service account")
    api, config = connected_account(base, fake, "smoke")
    if config["status"] != "connected":
        raise SmokeFailed(f"Firebase status is {config['status']}: {config['last_error']}")

    step("the app registers three devices; the worker subscribes them at the fake FCM")
    key = expect(api.post("/ingest-keys", json={"name": "Smoke app"}), 201)["secret"]
    app = httpx.Client(base_url=str(api.base_url), headers={"X-PushPilot-Key": key}, timeout=10)
    tokens = [f"smoke-device-{n}:APA91b{'s' * 60}" for n in range(3)]
    devices = [{"token": token, "time_zone": "Europe/Paris", "language": "fr",
                "platform": "android", "topics": ["smoke-news"]} for token in tokens]  # fmt: skip
    result = expect(app.post("/devices/batch", json={"devices": devices}), 202)
    if result["accepted"] != 3:
        raise SmokeFailed(f"the devices were not accepted: {result}")
    wait_for("the devices' subscriptions at the fake FCM", lambda: all(
        "smoke-news" in topics
        for topics in _subscriptions(fake, tokens)
    ))  # fmt: skip
    estimate = expect(api.get("/audience/estimate", params={"topic": "smoke-news"}), 200)
    if estimate["devices"] != 3:
        raise SmokeFailed(f"the estimate is {estimate}")
    print(f"   subscribed; estimate for smoke-news: {estimate['devices']} devices")

    step("generate copy")
    generated = expect(
        api.post(
            "/ai/generate", json={"prompt": "Our spring sale starts today", "tone": "friendly"}
        ),
        200,
    )
    variant = generated["variants"][0]
    print(f"   {variant['title']!r} / {variant['subtitle']!r} ({generated['provider']})")

    step("create a campaign")
    campaign = expect(api.post("/campaigns", json={
        "name": "Smoke", "target": {"topic": "smoke-news"},
        "contents": [{"title": variant["title"], "subtitle": variant["subtitle"]}],
    }), 201)  # fmt: skip

    step("schedule it 3 s ahead")
    run_at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    expect(
        api.post(
            f"/campaigns/{campaign['id']}/schedule",
            json={"scheduled_at": run_at, "timezone": "UTC"},
        ),
        200,
    )

    step("wait for the fake FCM to receive it")
    messages = wait_for("the message at the fake FCM", lambda: httpx.get(
        f"{fake}/_fake/messages", params={"project_id": "smoke-project"}, timeout=10
    ).json()["messages"])  # fmt: skip
    if messages[0]["message"]["notification"]["title"] != variant["title"]:
        raise SmokeFailed(f"the fake FCM received {messages[0]['message']}")
    print(f"   received {messages[0]['message_id']} on topic {messages[0]['message']['topic']}")
    if sorted(messages[0]["reached"]) != sorted(tokens):
        raise SmokeFailed(f"the message reached {messages[0]['reached']}, not the devices")
    print(f"   it reached the {len(tokens)} registered devices")

    step("the campaign's notifications show it sent")
    sent = wait_for("the notification to be marked sent", lambda: expect(
        api.get(f"/campaigns/{campaign['id']}/notifications", params={"status": "sent"}), 200
    )["results"])  # fmt: skip
    notification_id = sent[0]["id"]
    print(f"   notification {notification_id} sent")
    extra_steps(api, key, campaign["id"], notification_id)
    print("SMOKE OK", flush=True)


def _subscriptions(fake: str, tokens: list[str]) -> list[list[str]]:
    held = httpx.get(
        f"{fake}/_fake/subscriptions", params={"project_id": "smoke-project"}, timeout=10
    ).json()["subscriptions"]
    return [held.get(token, []) for token in tokens]


def extra_steps(api: httpx.Client, key: str, campaign_id: str, notification_id: str) -> None:
    step("stats show it sent")
    stats = wait_for("stats to count the send", lambda: _totals(api, campaign_id, "sent"))
    print(f"   sent={stats['sent']} opened={stats['opened']}")

    step("the app reports an open with its ingest key")
    event = {
        "id": f"open-{notification_id}",
        "type": "opened",
        "notification_id": notification_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "platform": "android",
    }
    ingest = httpx.post(
        str(api.base_url).rstrip("/") + "/events", json={"events": [event]},
        headers={"X-PushPilot-Key": key}, timeout=10,
    )  # fmt: skip
    result = expect(ingest, 202)
    if result["accepted"] != 1:
        raise SmokeFailed(f"the open was not accepted: {result}")

    step("stats show the open")
    stats = wait_for("stats to count the open", lambda: _totals(api, campaign_id, "opened"))
    print(f"   sent={stats['sent']} opened={stats['opened']}")

    step("/metrics counts the send (worker metrics merged into the web's)")
    base = str(api.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
    sent = wait_for(
        "notifications_sent_total in /metrics", lambda: _metric(base, "notifications_sent_total")
    )
    print(f"   notifications_sent_total {sent}")


def _metric(base: str, name: str) -> float | None:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values and values[0] >= 1 else None


def _totals(api: httpx.Client, campaign_id: str, counter: str) -> dict | None:
    totals = expect(api.get(f"/campaigns/{campaign_id}/stats"), 200)["totals"]
    return totals if totals[counter] >= 1 else None


def answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def embedded_stack(**env_overrides: str):
    """PushPilot as `make run` starts it, on free ports and always with the fake FCM, on
    whatever DATABASE_URL / REDIS_URL say; yields (API base URL, fake FCM URL), stops it after."""
    port, fake_port = free_port(), free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "FAKE_FCM_PORT": str(fake_port),
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    env.pop("FCM_BASE_URL", None)
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    stack = subprocess.Popen(
        [python, "manage.py", "run_embedded", "--port", str(port)],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fake_port}"
    finally:
        stop(stack)


def main() -> int:
    # Dashboards are cached (30 s by default); the smoke reads them twice within seconds.
    with embedded_stack(ANALYTICS_CACHE_SECONDS="1") as (base, fake):
        try:
            run(base, fake)
            return 0
        except (SmokeFailed, httpx.HTTPError) as exc:
            print(f"SMOKE FAILED: {exc}", file=sys.stderr, flush=True)
            return 1


def stop(stack: subprocess.Popen) -> None:
    """Stop `make run`'s process group: SIGTERM, then SIGKILL after 20 s."""
    os.killpg(stack.pid, signal.SIGTERM)
    try:
        stack.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(stack.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
