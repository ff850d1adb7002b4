"""`make demo-account` (manage.py demo_service_account): the offline way to connect Firebase."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def run(*args) -> str:
    out = io.StringIO()
    call_command("demo_service_account", *args, stdout=out)
    return out.getvalue()


def test_prints_a_put_body_the_running_fake_trusts(api, fake_fcm):
    body = json.loads(run("--fake-url", fake_fcm.base_url, "--project", "my-demo-app"))
    assert body["project_id"] == "my-demo-app"
    assert body["service_account"]["token_uri"] == fake_fcm.token_uri
    response = api.put("/api/v1/integrations/firebase", body, format="json")
    assert response.json()["status"] == "connected"
    assert api.post("/api/v1/integrations/firebase/test", {}, format="json").json()["ok"]
    assert [m["project_id"] for m in fake_fcm.messages()] == ["my-demo-app"]


def test_an_unreachable_fake_is_a_clear_error():
    with pytest.raises(CommandError, match="not reachable"):
        run("--fake-url", "http://127.0.0.1:9")  # nothing listens on the discard port
