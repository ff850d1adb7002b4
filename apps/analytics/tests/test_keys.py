"""Ingest keys: admins only, hashed at rest, secret shown once, rotate and revoke take effect
at once (the cached lookup is dropped when the change commits)."""

import hashlib

import pytest

from apps.analytics.models import IngestKey
from apps.analytics.tests.factories import event
from apps.common.models import AuditLog

URL = "/api/v1/ingest-keys"


def ingest(client):
    return client.post("/api/v1/events", {"events": [event("x")]}, format="json")


def test_an_admin_creates_a_key_whose_secret_is_shown_once(api, workspace, app_client):
    response = api.post(URL, {"name": "iOS app"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("ppk_live_") and len(secret) > 40
    assert body["prefix"] == secret[:17] and body["status"] == "active"
    key = IngestKey.objects.get(pk=body["id"])
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(IngestKey.objects.filter(pk=key.pk).values().first())

    listed = api.get(URL).json()["results"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0] and "secret" not in api.get(f"{URL}/{key.pk}").json()
    audit = AuditLog.objects.get(action="ingest_key.created")
    assert secret not in str(audit.metadata) and audit.target_id == str(key.pk)
    assert ingest(app_client(secret)).status_code == 202


def test_members_cannot_see_or_manage_keys(member_api, ingest_key):
    for response in (
        member_api.get(URL),
        member_api.post(URL, {"name": "x"}, format="json"),
        member_api.post(f"{URL}/{ingest_key.key.pk}/rotate"),
        member_api.post(f"{URL}/{ingest_key.key.pk}/revoke"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_rotation_replaces_the_secret_at_once(
    api, app, app_client, ingest_key, django_capture_on_commit_callbacks
):
    assert ingest(app).status_code == 202  # the lookup is cached now
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{URL}/{ingest_key.key.pk}/rotate")
    assert response.status_code == 200
    new_secret = response.json()["secret"]
    assert new_secret != ingest_key.secret and response.json()["rotated_at"]
    assert ingest(app).status_code == 401
    assert ingest(app_client(new_secret)).status_code == 202
    assert AuditLog.objects.filter(action="ingest_key.rotated").count() == 1


def test_revocation_is_immediate_and_final(
    api, app, ingest_key, django_capture_on_commit_callbacks
):
    assert ingest(app).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{URL}/{ingest_key.key.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    refused = ingest(app)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    again = api.post(f"{URL}/{ingest_key.key.pk}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == response.json()["revoked_at"]
    assert AuditLog.objects.filter(action="ingest_key.revoked").count() == 1
    rotated = api.post(f"{URL}/{ingest_key.key.pk}/rotate")
    assert rotated.status_code == 409


def test_a_deleted_workspace_keys_stop_working(app, workspace):
    workspace.mark_deleted()
    workspace.save()
    assert ingest(app).status_code == 401


@pytest.mark.parametrize("path", ["", "/rotate", "/revoke"])
def test_another_workspaces_key_is_not_found(
    path, client_for, make_user, make_workspace, ingest_key
):
    stranger = make_user(email="s@b.test")
    theirs = make_workspace(owner=stranger, name="B")
    client = client_for(stranger, theirs)
    method = client.get if path == "" else client.post
    assert method(f"{URL}/{ingest_key.key.pk}{path}").status_code == 404
    assert IngestKey.objects.get(pk=ingest_key.key.pk).revoked_at is None
