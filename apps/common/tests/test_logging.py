import json
import logging

import pytest

from apps.common.logging import ProcessorFormatter


def rendered_lines(caplog) -> list[dict]:
    """Render captured records through the production formatter: what operators would see."""
    formatter = ProcessorFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


@pytest.mark.django_db
def test_one_json_line_per_request_with_context_and_no_secrets(client_for, caplog):
    caplog.set_level(logging.INFO)
    password = "Very-Secret-Pa55word"
    client = client_for()
    response = client.post(
        "/api/v1/auth/register",
        {"email": "log@example.com", "password": password},
        format="json",
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 201
    access = response.json()["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    workspace_id = response.json()["workspace"]["id"]
    client.get("/api/v1/audit-logs", HTTP_X_WORKSPACE_ID=workspace_id, HTTP_X_REQUEST_ID="req-43")

    lines = rendered_lines(caplog)
    requests = [line for line in lines if line["event"] == "request"]
    assert [line["request_id"] for line in requests] == ["req-42", "req-43"]
    second = requests[1]
    for key in (
        "timestamp",
        "level",
        "request_id",
        "user_id",
        "workspace_id",
        "method",
        "route",
        "status",
        "duration_ms",
    ):
        assert key in second
    assert second["workspace_id"] == workspace_id
    assert second["user_id"] == response.json()["user"]["id"]
    assert second["route"] == "api/v1/audit-logs"
    assert second["status"] == 200

    everything = "\n".join(json.dumps(line) for line in lines)
    assert password not in everything
    assert access not in everything
    assert response.json()["refresh"] not in everything


def test_sensitive_keys_are_redacted_at_any_depth(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("anything").info("x", extra={})  # stdlib records pass through the same chain
    from apps.common.logging import get_logger

    get_logger("t").info(
        "event",
        password="p",
        nested={"Authorization": "Bearer abc", "ok": 1, "service_account": {"private_key": "k"}},
    )
    line = rendered_lines(caplog)[-1]
    assert line["password"] == "[redacted]"
    assert line["nested"] == {
        "Authorization": "[redacted]",
        "ok": 1,
        "service_account": "[redacted]",
    }
