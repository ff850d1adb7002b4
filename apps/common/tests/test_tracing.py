"""The request id follows the work a request enqueues, into a real worker process."""

import json
import time

import pytest
import structlog

from apps.common import tracing


def test_publish_adds_the_request_context_to_task_headers():
    structlog.contextvars.bind_contextvars(request_id="req-1", workspace_id="ws-1")
    try:
        headers = {}
        tracing.add_trace_headers(headers=headers)
        assert headers == {"request_id": "req-1", "workspace_id": "ws-1"}
    finally:
        structlog.contextvars.clear_contextvars()


def test_invitation_email_goes_out_after_commit(
    api, workspace, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(
            f"/api/v1/workspaces/{workspace.pk}/invitations", {"email": "friend@example.com"}
        )
    assert response.status_code == 201 and len(callbacks) == 1
    [mail] = mailoutbox
    assert mail.to == ["friend@example.com"]
    assert response.json()["token"] in mail.body and "Acme" in mail.subject


@pytest.mark.postgres
@pytest.mark.redis
def test_a_task_log_line_carries_the_originating_request_id(
    celery_worker_process, make_user, make_workspace, client_for
):
    owner = make_user(email="boss@example.com")
    workspace = make_workspace(owner=owner)
    client = client_for(owner)
    response = client.post(
        f"/api/v1/workspaces/{workspace.pk}/invitations",
        {"email": "friend@example.com"},
        HTTP_X_REQUEST_ID="trace-me-123",
    )
    assert response.status_code == 201
    deadline = time.monotonic() + 20
    line = None
    while line is None and time.monotonic() < deadline:
        for raw in celery_worker_process.log_path.read_text().splitlines():
            if raw.startswith("{") and '"invitation_email_sent"' in raw:
                line = json.loads(raw)
        time.sleep(0.1)
    assert line is not None, celery_worker_process.log_path.read_text()[-3000:]
    assert line["request_id"] == "trace-me-123"
    assert line["workspace_id"] == str(workspace.pk)
    assert line["task"] == "apps.workspaces.tasks.send_invitation_email"
