"""API keys over HTTP: made by admins, shown once, stored as a hash; X-API-Key in the tenancy
base (the key names its workspace); scopes; expiry; rotation with a grace period; revocation;
last use; the audit trail names the key; server-side device registration."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.campaigns.models import Campaign
from apps.common.actors import user_or_none
from apps.common.models import AuditLog
from apps.workspaces import keys
from apps.workspaces.models import ApiKey, ApiKeyScope, scope_grants

KEYS = "/api/v1/api-keys"
CAMPAIGNS = "/api/v1/campaigns"
A_CAMPAIGN = {"name": "Launch", "target": {"topic": "news"},
              "contents": [{"title": "Hi", "subtitle": "There"}]}  # fmt: skip


def error(response) -> dict:
    return response.json()["error"]


# --- managing keys ------------------------------------------------------------------------------
def test_an_admin_creates_a_key_whose_secret_is_shown_once(api, workspace):
    response = api.post(KEYS, {"name": "CI", "scopes": ["campaigns:write", "templates:read"]})
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert secret.startswith(keys.SECRET_PREFIX) and len(secret) > 40
    assert body["prefix"] == secret[: keys.VISIBLE_CHARS]
    assert body["scopes"] == ["campaigns:write", "templates:read"]
    assert body["status"] == "active" and body["last_used_at"] is None
    # Stored as its hash: the secret is nowhere in the row, nor in any later answer.
    row = ApiKey.objects.get(pk=body["id"])
    assert secret not in str(list(ApiKey.objects.filter(pk=row.pk).values_list()))
    assert row.secret_hash == keys.digest_of(secret)
    for answer in (api.get(KEYS), api.get(f"{KEYS}/{row.pk}")):
        assert answer.status_code == 200
        assert secret not in answer.content.decode() and "secret" not in answer.content.decode()
    listed = api.get(KEYS).json()["results"]
    assert [(k["id"], k["prefix"]) for k in listed] == [(str(row.pk), body["prefix"])]
    entry = AuditLog.objects.get(action="api_key.created")
    assert entry.target_id == str(row.pk) and entry.metadata["scopes"] == row.scopes
    assert secret not in str(entry.metadata)


def test_bad_key_requests_are_400s(api):
    for body, field in [
        ({"name": "x", "scopes": ["campaigns:admin"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"scopes": ["campaigns:read"]}, "name"),
        ({"name": "x", "scopes": ["campaigns:read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ]:  # fmt: skip
        response = api.post(KEYS, body)
        assert response.status_code == 400, (body, response.content)
        assert error(response)["code"] == "VALIDATION_ERROR"
        assert field in error(response)["details"]


def test_members_and_keys_cannot_manage_keys(member_api, workspace, make_api_key, key_client):
    assert error(member_api.get(KEYS))["code"] == "PERMISSION_DENIED"
    assert member_api.post(KEYS, {"name": "x", "scopes": ["campaigns:read"]}).status_code == 403
    every_scope = make_api_key(workspace, ApiKeyScope.values)
    with_key = key_client(every_scope.secret)
    for response in (
        with_key.get(KEYS),
        with_key.post(KEYS, {"name": "x", "scopes": ["campaigns:read"]}),
        with_key.post(f"{KEYS}/{every_scope.key.pk}/rotate"),
        with_key.delete(f"{KEYS}/{every_scope.key.pk}"),
    ):
        assert response.status_code == 403
        assert "does not accept API keys" in error(response)["message"]
    assert ApiKey.objects.get().revoked_at is None


# --- using a key --------------------------------------------------------------------------------
def test_a_key_acts_in_its_workspace_without_the_header(
    workspace, make_workspace, make_api_key, key_client
):
    issued = make_api_key(workspace, ["campaigns:write"])
    client = key_client(issued.secret)
    created = client.post(CAMPAIGNS, A_CAMPAIGN)
    assert created.status_code == 201, created.content
    campaign = Campaign.objects.get(pk=created.json()["id"])
    assert campaign.workspace_id == workspace.pk and campaign.created_by is None
    # write includes read; the header, when sent, must be the key's own workspace.
    assert client.get(CAMPAIGNS).json()["count"] == 1
    assert key_client(issued.secret, workspace).get(CAMPAIGNS).status_code == 200
    other = make_workspace(name="Other")
    for workspace_id in (str(other.pk), str(uuid.uuid4()), "not-a-uuid"):
        response = client.get(CAMPAIGNS, HTTP_X_WORKSPACE_ID=workspace_id)
        assert response.status_code == 403
        assert error(response)["code"] == "WORKSPACE_ACCESS_DENIED"
    assert client.get(f"{CAMPAIGNS}?workspace_id={other.pk}").status_code == 403


def test_a_key_without_the_scope_is_a_403_naming_it(workspace, make_api_key, key_client):
    client = key_client(make_api_key(workspace, ["campaigns:read", "templates:write"]).secret)
    assert client.get(CAMPAIGNS).status_code == 200
    refused = client.post(CAMPAIGNS, A_CAMPAIGN)
    assert refused.status_code == 403
    assert error(refused) == {
        "code": "PERMISSION_DENIED",
        "message": "This API key lacks the 'campaigns:write' scope.",
        "details": {},
    }
    assert not Campaign.objects.exists()
    # Routes that manage people and secrets take no key, whatever its scopes.
    for path in ("/api/v1/me", "/api/v1/integrations/firebase", "/api/v1/ingest-keys",
                 f"/api/v1/workspaces/{workspace.pk}/members"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 403, path
        assert "does not accept API keys" in error(response)["message"]


def test_write_includes_read_and_nothing_else():
    assert scope_grants("campaigns:write", "campaigns:read")
    assert scope_grants("campaigns:read", "campaigns:read")
    assert not scope_grants("campaigns:read", "campaigns:write")
    assert not scope_grants("templates:write", "campaigns:read")
    assert not scope_grants("ai:write", "templates:write")


def test_unknown_expired_and_foreign_prefix_keys_are_401s(workspace, make_api_key, key_client):
    issued = make_api_key(workspace, ["campaigns:read"])
    for secret in (keys.SECRET_PREFIX + "x" * 43, "ppk_live_" + "x" * 43, "", "x" * 500):
        response = key_client(secret).get(CAMPAIGNS)
        assert response.status_code == 401, secret
        assert error(response)["code"] == "AUTHENTICATION_FAILED"
    assert key_client(issued.secret).get(CAMPAIGNS).status_code == 200
    ApiKey.objects.filter(pk=issued.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = key_client(issued.secret).get(CAMPAIGNS)
    assert response.status_code == 401
    assert error(response) == {
        "code": "AUTHENTICATION_FAILED",
        "message": "This API key has expired.",
        "details": {},
    }


def test_a_key_with_an_expiry_works_until_then(api, key_client):
    expires_at = timezone.now() + timedelta(hours=1)
    body = api.post(
        KEYS, {"name": "temp", "scopes": ["campaigns:read"], "expires_at": expires_at.isoformat()}
    ).json()
    assert key_client(body["secret"]).get(CAMPAIGNS).status_code == 200
    ApiKey.objects.filter(pk=body["id"]).update(expires_at=timezone.now())
    assert key_client(body["secret"]).get(CAMPAIGNS).status_code == 401
    assert api.get(f"{KEYS}/{body['id']}").json()["status"] == "expired"
    # Rotation does not bring an expired key back.
    assert error(api.post(f"{KEYS}/{body['id']}/rotate"))["code"] == "CONFLICT"


def test_rotation_keeps_the_old_secret_for_the_grace_period(api, key_client, settings):
    settings.API_KEY_ROTATION_GRACE_SECONDS = 3600
    created = api.post(KEYS, {"name": "CI", "scopes": ["campaigns:read"]}).json()
    old = created["secret"]
    before = timezone.now()
    rotated = api.post(f"{KEYS}/{created['id']}/rotate")
    assert rotated.status_code == 200, rotated.content
    body = rotated.json()
    new = body["secret"]
    assert (
        new != old and body["id"] == created["id"] and body["prefix"] == new[: keys.VISIBLE_CHARS]
    )
    assert body["previous_prefix"] == created["prefix"]
    grace_end = timezone.datetime.fromisoformat(body["previous_valid_until"])
    assert before + timedelta(seconds=3600) <= grace_end <= timezone.now() + timedelta(seconds=3600)
    assert key_client(new).get(CAMPAIGNS).status_code == 200
    assert key_client(old).get(CAMPAIGNS).status_code == 200  # within the grace period
    # The grace period ends: the old secret fails, the new one goes on.
    ApiKey.objects.filter(pk=created["id"]).update(previous_valid_until=timezone.now())
    late = key_client(old).get(CAMPAIGNS)
    assert late.status_code == 401 and "grace period is over" in error(late)["message"]
    assert key_client(new).get(CAMPAIGNS).status_code == 200
    entry = AuditLog.objects.get(action="api_key.rotated")
    assert (
        entry.metadata["old_prefix"] == created["prefix"]
        and entry.metadata["prefix"] == body["prefix"]
    )
    assert old not in str(entry.metadata) and new not in str(entry.metadata)


def test_rotating_again_ends_the_older_secret_at_once(api, key_client):
    created = api.post(KEYS, {"name": "CI", "scopes": ["campaigns:read"]}).json()
    second = api.post(f"{KEYS}/{created['id']}/rotate").json()["secret"]
    third = api.post(f"{KEYS}/{created['id']}/rotate").json()["secret"]
    assert key_client(created["secret"]).get(CAMPAIGNS).status_code == 401
    assert key_client(second).get(CAMPAIGNS).status_code == 200
    assert key_client(third).get(CAMPAIGNS).status_code == 200


def test_revoking_ends_the_current_and_the_previous_secret(api, key_client):
    created = api.post(KEYS, {"name": "CI", "scopes": ["campaigns:read"]}).json()
    new = api.post(f"{KEYS}/{created['id']}/rotate").json()["secret"]
    client = key_client(new)
    assert client.get(CAMPAIGNS).status_code == 200
    assert api.delete(f"{KEYS}/{created['id']}").status_code == 204
    for secret in (new, created["secret"]):
        response = key_client(secret).get(CAMPAIGNS)
        assert response.status_code == 401
        assert error(response)["message"] == "This API key has been revoked."
    assert api.get(f"{KEYS}/{created['id']}").json()["status"] == "revoked"
    # Revoking again changes nothing and is not audited twice; a revoked key cannot rotate.
    assert api.delete(f"{KEYS}/{created['id']}").status_code == 204
    assert AuditLog.objects.filter(action="api_key.revoked").count() == 1
    assert error(api.post(f"{KEYS}/{created['id']}/rotate"))["code"] == "CONFLICT"


def test_another_workspaces_key_is_not_found(api, make_workspace, make_user, make_api_key):
    foreign = make_api_key(make_workspace(owner=make_user(), name="B"), ["campaigns:read"])
    for response in (
        api.get(f"{KEYS}/{foreign.key.pk}"),
        api.delete(f"{KEYS}/{foreign.key.pk}"),
        api.post(f"{KEYS}/{foreign.key.pk}/rotate"),
    ):
        assert response.status_code == 404
    assert ApiKey.objects.get(pk=foreign.key.pk).revoked_at is None


@pytest.mark.django_db(transaction=True)  # noted after the request commits: real commits
def test_last_used_moves_at_most_once_a_minute(workspace, make_api_key, key_client):
    issued = make_api_key(workspace, ["campaigns:read"])
    client = key_client(issued.secret)

    def last_used():
        return ApiKey.objects.get(pk=issued.key.pk).last_used_at

    assert last_used() is None
    assert client.get(CAMPAIGNS).status_code == 200
    first = last_used()
    assert first is not None and timezone.now() - first < timedelta(seconds=10)
    assert client.get(CAMPAIGNS).status_code == 200
    assert last_used() == first  # within the minute: not written again
    stale = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=issued.key.pk).update(last_used_at=stale)
    assert client.get(CAMPAIGNS).status_code == 200
    assert last_used() > stale + timedelta(minutes=1)
    # A refused request is not a use.
    ApiKey.objects.filter(pk=issued.key.pk).update(last_used_at=stale)
    assert client.post(CAMPAIGNS, A_CAMPAIGN).status_code == 403
    assert last_used() == stale


def test_a_bearer_token_and_a_key_together_act_as_the_person(api, workspace, make_api_key, owner):
    issued = make_api_key(workspace, ["campaigns:read"])
    response = api.post(CAMPAIGNS, A_CAMPAIGN, HTTP_X_API_KEY=issued.secret)
    assert response.status_code == 201
    assert Campaign.objects.get().created_by == owner


# --- audited as the key -------------------------------------------------------------------------
def test_actions_with_a_key_are_audited_as_the_key(workspace, make_api_key, key_client, api):
    writer = make_api_key(workspace, ["campaigns:write"], name="Deploy bot")
    campaign_id = key_client(writer.secret).post(CAMPAIGNS, A_CAMPAIGN).json()["id"]
    entry = AuditLog.objects.get(action="campaign.created")
    assert entry.actor is None and entry.actor_api_key_id == writer.key.pk
    assert entry.target_id == campaign_id and entry.workspace_id == workspace.pk

    auditor = key_client(make_api_key(workspace, ["audit:read"]).secret)
    rows = auditor.get("/api/v1/audit-logs", {"action": "campaign.created"}).json()["results"]
    assert [(r["actor_type"], r["actor"], r["actor_api_key"], r["actor_api_key_name"],
             r["actor_api_key_prefix"]) for r in rows] == [
        ("api_key", None, str(writer.key.pk), "Deploy bot", writer.key.prefix)
    ]  # fmt: skip
    by_key = api.get("/api/v1/audit-logs", {"actor_api_key": str(writer.key.pk)}).json()
    assert [r["action"] for r in by_key["results"]] == ["campaign.created"]
    people = api.get("/api/v1/audit-logs", {"action": "api_key.created"}).json()["results"]
    assert {r["actor_type"] for r in people} == {"user"}


def test_the_principal_is_not_a_user(workspace, make_api_key):
    principal = keys.ApiKeyPrincipal(make_api_key(workspace, ["campaigns:read"]).key)
    assert principal.is_authenticated and user_or_none(principal) is None


def test_ai_generation_with_a_key(workspace, make_api_key, key_client, settings):
    from apps.ai.models import AIGeneration

    settings.AI_PROVIDER = "offline"
    client = key_client(make_api_key(workspace, ["ai:write"]).secret)
    response = client.post(
        "/api/v1/ai/generate", {"prompt": "Flash sale tonight", "tone": "urgent"}
    )
    assert response.status_code == 200, response.content
    generation = AIGeneration.objects.get()
    assert generation.user is None
    assert client.get("/api/v1/ai/generations").json()["count"] == 1  # ai:write includes ai:read
    save = client.post(f"/api/v1/ai/generations/{generation.pk}/save-template", {})
    assert save.status_code == 403 and "templates:write" in error(save)["message"]


# --- throttled per key --------------------------------------------------------------------------
def test_each_key_has_its_own_rate(workspace, make_api_key, key_client, monkeypatch):
    from apps.workspaces.authentication import ApiKeyRateThrottle

    monkeypatch.setitem(ApiKeyRateThrottle.THROTTLE_RATES, "api_key", "3/min")
    first = key_client(make_api_key(workspace, ["campaigns:read"]).secret)
    statuses = [first.get(CAMPAIGNS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = first.get(CAMPAIGNS)
    assert error(throttled)["code"] == "THROTTLED" and int(throttled["Retry-After"]) > 0
    assert (
        key_client(make_api_key(workspace, ["campaigns:read"]).secret).get(CAMPAIGNS).status_code
        == 200
    )


# --- server-side device registration ------------------------------------------------------------
DEVICE = {"token": "server-side:APA91b" + "s" * 60, "time_zone": "UTC", "language": "en",
          "platform": "android", "topics": ["news"]}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_devices_write_key_registers_devices_from_a_server(
    workspace, make_workspace, make_api_key, key_client
):
    from apps.devices.models import Device

    writer = key_client(make_api_key(workspace, ["devices:write"]).secret)
    response = writer.post("/api/v1/devices", DEVICE, format="json")
    assert response.status_code == 201, response.content
    assert Device.objects.get().workspace_id == workspace.pk
    batch = writer.post("/api/v1/devices/batch", {"devices": [DEVICE]}, format="json")
    assert batch.status_code == 202 and batch.json()["accepted"] == 1
    # devices:write includes devices:read (the audience views).
    assert len(writer.get("/api/v1/audience/devices").json()["results"]) == 1
    # Another scope, or another workspace's id: refused, nothing registered.
    reader = key_client(make_api_key(workspace, ["campaigns:write"]).secret)
    refused = reader.post("/api/v1/devices", {**DEVICE, "token": "x:" + "t" * 70}, format="json")
    assert refused.status_code == 403 and "devices:write" in error(refused)["message"]
    other = make_workspace(name="Other")
    elsewhere = writer.post(
        "/api/v1/devices", {**DEVICE, "token": "y:" + "t" * 70}, format="json",
        HTTP_X_WORKSPACE_ID=str(other.pk),
    )  # fmt: skip
    assert elsewhere.status_code == 403 and error(elsewhere)["code"] == "WORKSPACE_ACCESS_DENIED"
    assert Device.objects.count() == 1
    assert writer.delete(f"/api/v1/devices/{DEVICE['token']}").status_code in (204, 202)


def test_a_view_cannot_declare_an_unknown_scope():
    from apps.workspaces.tenancy import WorkspaceScopedViewSet

    with pytest.raises(TypeError, match="campaigns:admin"):
        type("Typo", (WorkspaceScopedViewSet,), {"api_key_scopes": {"GET": "campaigns:admin"}})


def test_a_deleted_workspaces_keys_stop_working(workspace, make_api_key, key_client):
    client = key_client(make_api_key(workspace, ["campaigns:read"]).secret)
    assert client.get(CAMPAIGNS).status_code == 200
    workspace.mark_deleted()
    response = client.get(CAMPAIGNS)
    assert response.status_code == 401 and error(response)["code"] == "AUTHENTICATION_FAILED"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_of_two_concurrent_rotations_one_wins(workspace, make_api_key, owner, key_client):
    from apps.common.errors import Conflict
    from apps.common.testing import race

    issued = make_api_key(workspace, ["campaigns:read"])
    # Two admins have read the key; both rotate it at the same moment.
    first, second = ApiKey.objects.get(), ApiKey.objects.get()
    outcomes = race(
        lambda: keys.rotate_api_key(key=first, actor=owner),
        lambda: keys.rotate_api_key(key=second, actor=owner),
        expected=(Conflict,),
    )
    winners = [o for o in outcomes if isinstance(o, keys.IssuedApiKey)]
    assert len(winners) == 1 and sum(isinstance(o, Conflict) for o in outcomes) == 1
    # The winner's secret is the stored one; the original stays in its grace period.
    assert key_client(winners[0].secret).get(CAMPAIGNS).status_code == 200
    assert key_client(issued.secret).get(CAMPAIGNS).status_code == 200
    assert AuditLog.objects.filter(action="api_key.rotated").count() == 1
