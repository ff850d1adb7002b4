"""The endpoints API: secrets shown once and encrypted at rest, roles, validation in the
error contract, changes audited."""

import base64

import pytest

from apps.common.models import AuditLog
from apps.webhooks.models import WebhookEndpoint

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]

URL = "/api/v1/webhooks/endpoints"
BODY = {"url": "https://hooks.example.com/pushpilot", "event_types": ["campaign.completed"]}


def test_create_shows_the_secret_once_and_stores_it_encrypted(api):
    response = api.post(URL, BODY)
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and 24 <= len(base64.b64decode(secret[6:])) <= 64
    assert body["enabled"] is True and body["event_types"] == ["campaign.completed"]
    row = WebhookEndpoint.objects.get()
    assert secret not in row.secret_encrypted and secret[6:] not in row.secret_encrypted
    shown = api.get(f"{URL}/{body['id']}").json()
    assert "secret" not in shown and secret not in str(api.get(URL).json())
    entry = AuditLog.objects.get(action="webhook_endpoint.created")
    assert secret not in str(entry.metadata)
    rotated = api.post(f"{URL}/{body['id']}/rotate-secret").json()
    assert rotated["secret"] != secret and rotated["previous_secret_expires_at"]


def test_members_read_endpoints_and_the_log_but_only_admins_change_them(api, member_api):
    endpoint_id = api.post(URL, BODY).json()["id"]
    assert member_api.get(URL).status_code == 200
    assert member_api.get(f"{URL}/{endpoint_id}/deliveries").status_code == 200
    for method, path in [
        ("post", URL), ("patch", f"{URL}/{endpoint_id}"), ("delete", f"{URL}/{endpoint_id}"),
        ("post", f"{URL}/{endpoint_id}/rotate-secret"), ("post", f"{URL}/{endpoint_id}/test"),
        ("post", f"{URL}/{endpoint_id}/enable"),
    ]:  # fmt: skip
        response = getattr(member_api, method)(path, BODY)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"url": "https://169.254.169.254/latest"}, "url"),
        ({"url": "https://user:secret@hooks.example.com/"}, "url"),
        ({"url": "http://hooks.example.com/"}, "url"),
        ({"event_types": ["campaign.exploded"]}, "event_types"),
        ({"event_types": []}, "event_types"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, settings, change, field):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.WEBHOOK_REQUIRE_HTTPS = True
    response = api.post(URL, {**BODY, **change})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]
    endpoint_id = api.post(URL, BODY).json()["id"]
    response = api.patch(f"{URL}/{endpoint_id}", change)
    assert response.status_code == 400 and field in response.json()["error"]["details"]


def test_change_disable_by_hand_and_delete(api):
    endpoint_id = api.post(URL, BODY).json()["id"]
    response = api.patch(
        f"{URL}/{endpoint_id}", {"event_types": ["*"], "description": "all", "enabled": False}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["event_types"] == ["*"] and body["description"] == "all"
    assert body["enabled"] is False and body["disabled_reason"] == "Disabled by hand."
    assert api.post(f"{URL}/{endpoint_id}/enable").json()["enabled"] is True
    assert api.delete(f"{URL}/{endpoint_id}").status_code == 204
    assert api.get(f"{URL}/{endpoint_id}").status_code == 404
    actions = list(AuditLog.objects.filter(action__startswith="webhook_endpoint.")
                   .order_by("created_at").values_list("action", flat=True))  # fmt: skip
    assert actions == [
        "webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.disabled",
        "webhook_endpoint.enabled", "webhook_endpoint.deleted",
    ]  # fmt: skip


def test_another_workspaces_endpoint_is_not_found(api, client_for, make_user, make_workspace):
    endpoint_id = api.post(URL, BODY).json()["id"]
    stranger = make_user()
    other = client_for(stranger, make_workspace(owner=stranger, name="Other"))
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"{URL}/{endpoint_id}").status_code == 404
    assert other.get(f"{URL}/{endpoint_id}/deliveries").status_code == 404
    assert other.get(URL).json()["count"] == 0


def test_redelivering_an_unknown_entry_is_404(api):
    endpoint_id = api.post(URL, BODY).json()["id"]
    response = api.post(
        f"{URL}/{endpoint_id}/deliveries/00000000-0000-0000-0000-000000000000/redeliver"
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
