import pytest
from rest_framework.throttling import ScopedRateThrottle

from apps.accounts.models import User
from apps.common.models import AuditLog
from apps.workspaces.models import Workspace, WorkspaceMember

PASSWORD = "Correct-Horse-Battery-9"


def register(client, email="new@example.com", password=PASSWORD, **extra):
    return client.post(
        "/api/v1/auth/register", {"email": email, "password": password, **extra}, format="json"
    )


@pytest.mark.django_db
def test_register_creates_user_workspace_and_owner_membership(client_for):
    response = register(client_for(), email="  Ada@Example.COM ", name="Ada")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "workspace", "access", "refresh"}
    assert body["user"]["email"] == "ada@example.com"
    assert body["workspace"]["name"] == "Ada's workspace"
    user = User.objects.get(email="ada@example.com")
    membership = WorkspaceMember.objects.get(user=user)
    assert membership.role == "owner" and str(membership.workspace_id) == body["workspace"]["id"]
    assert AuditLog.objects.filter(action="user.registered", actor=user).exists()
    # The tokens work.
    me = client_for()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.get("/api/v1/me").json()["email"] == "ada@example.com"


@pytest.mark.django_db
def test_register_refuses_duplicates_case_insensitively_and_weak_passwords(client_for):
    client = client_for()
    assert register(client, email="dup@example.com").status_code == 201
    again = register(client, email="DUP@example.com")
    assert again.status_code == 400
    assert "email" in again.json()["error"]["details"]
    weak = register(client, email="weak@example.com", password="12345678")
    assert weak.status_code == 400
    assert weak.json()["error"]["details"]["password"]
    assert not User.objects.filter(email="weak@example.com").exists()
    assert Workspace.objects.count() == 1


@pytest.mark.django_db
def test_register_is_all_or_nothing(client_for, monkeypatch):
    from apps.accounts import services

    def fail(**kwargs):
        raise RuntimeError("workspace creation failed")

    monkeypatch.setattr(services, "create_workspace", fail)
    client = client_for()
    client.raise_request_exception = False
    response = register(client, email="half@example.com")
    assert response.status_code == 500
    assert not User.objects.filter(email="half@example.com").exists()


@pytest.mark.django_db
def test_token_refresh_rotation_and_logout(client_for, make_user):
    make_user(email="t@example.com", password=PASSWORD)
    client = client_for()
    bad = client.post("/api/v1/auth/token", {"email": "t@example.com", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "AUTHENTICATION_FAILED"

    tokens = client.post(
        "/api/v1/auth/token", {"email": "T@Example.com", "password": PASSWORD}, format="json"
    ).json()
    assert set(tokens) == {"access", "refresh"}

    rotated = client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}).json()
    assert set(rotated) == {"access", "refresh"} and rotated["refresh"] != tokens["refresh"]
    reused = client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]})
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "AUTHENTICATION_FAILED"

    assert client.post("/api/v1/auth/logout/", {"refresh": rotated["refresh"]}).status_code == 204
    after = client.post("/api/v1/auth/token/refresh", {"refresh": rotated["refresh"]})
    assert after.status_code == 401
    assert client.post("/api/v1/auth/logout", {"refresh": "garbage"}).status_code == 401


@pytest.mark.django_db
def test_inactive_users_cannot_log_in(client_for, make_user):
    make_user(email="off@example.com", password=PASSWORD, is_active=False)
    response = client_for().post(
        "/api/v1/auth/token", {"email": "off@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401


def test_me_get_and_patch(api, owner):
    assert api.get("/api/v1/me").json()["name"] == "Olive Owner"
    response = api.patch(
        "/api/v1/me", {"name": "Olive O.", "email": "ignored@x.com"}, format="json"
    )
    assert response.status_code == 200
    owner.refresh_from_db()
    assert owner.name == "Olive O." and owner.email == "owner@example.com"
    too_long = api.patch("/api/v1/me", {"name": "x" * 151}, format="json")
    assert too_long.status_code == 400


@pytest.mark.django_db
def test_login_and_register_are_throttled_per_ip(client_for, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "auth", "3/min")
    client = client_for()
    statuses = [register(client, email=f"r{i}@example.com").status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]
    other_ip = client_for()
    response = other_ip.post(
        "/api/v1/auth/token",
        {"email": "r0@example.com", "password": PASSWORD},
        REMOTE_ADDR="10.9.8.7",
    )
    assert response.status_code == 200


def test_authenticated_requests_are_throttled_per_user(api, client_for, make_user, monkeypatch):
    from rest_framework.throttling import UserRateThrottle

    monkeypatch.setitem(UserRateThrottle.THROTTLE_RATES, "user", "3/day")
    statuses = [api.get("/api/v1/me").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Another user has their own budget.
    assert client_for(make_user()).get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_registration_seeds_example_templates(client_for):
    from apps.ai.models import Template

    body = register(client_for(), email="seeded@example.com").json()
    templates = Template.objects.filter(workspace_id=body["workspace"]["id"])
    assert templates.count() >= 3
    assert all(t.title and t.subtitle for t in templates)


def test_an_account_is_locked_after_repeated_wrong_passwords(client_for, make_user, settings):
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_FAILURE_WINDOW_SECONDS = 3, 600
    make_user(email="target@example.com", password="Right-Passw0rd!")
    client = client_for()
    wrong = {"email": "Target@Example.com", "password": "guess"}  # any case: one account
    for _ in range(3):
        assert client.post("/api/v1/auth/token", wrong).status_code == 401
    locked = client.post(
        "/api/v1/auth/token", {"email": "target@example.com", "password": "Right-Passw0rd!"}
    )
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "THROTTLED"
    assert 0 < int(locked["Retry-After"]) <= 600
    other = make_user(email="other@example.com", password="Right-Passw0rd!")
    assert (
        client.post(
            "/api/v1/auth/token", {"email": other.email, "password": "Right-Passw0rd!"}
        ).status_code
        == 200
    )  # only that account


def test_a_successful_sign_in_resets_the_failures(client_for, make_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    make_user(email="forgetful@example.com", password="Right-Passw0rd!")
    client = client_for()
    right = {"email": "forgetful@example.com", "password": "Right-Passw0rd!"}
    for _ in range(3):
        for _ in range(2):
            client.post("/api/v1/auth/token", {**right, "password": "oops"})
        assert client.post("/api/v1/auth/token", right).status_code == 200
