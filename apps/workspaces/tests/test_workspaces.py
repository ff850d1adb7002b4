from datetime import timedelta

import pytest
from django.utils import timezone

from apps.workspaces.models import Invitation, WorkspaceMember


def test_list_and_create_workspaces(api, workspace):
    listed = api.get("/api/v1/workspaces").json()
    assert [w["id"] for w in listed] == [str(workspace.pk)]
    created = api.post("/api/v1/workspaces", {"name": "Second", "timezone": "Europe/Paris"})
    assert created.status_code == 201
    assert created.json()["timezone"] == "Europe/Paris"
    assert len(api.get("/api/v1/workspaces").json()) == 2
    bad = api.post("/api/v1/workspaces", {"name": "X", "timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "timezone" in bad.json()["error"]["details"]


def test_roles_for_workspace_detail(api, member_api, workspace):
    url = f"/api/v1/workspaces/{workspace.pk}"
    assert member_api.get(url).status_code == 200
    assert member_api.patch(url, {"name": "Nope"}).status_code == 403
    assert api.patch(url, {"name": "Renamed"}).json()["name"] == "Renamed"
    assert member_api.delete(url).status_code == 403


def test_only_owners_delete_and_deleted_workspaces_disappear(
    api, workspace, make_user, add_member, client_for
):
    admin = make_user(email="admin@example.com")
    add_member(workspace, admin, "admin")
    url = f"/api/v1/workspaces/{workspace.pk}"
    assert client_for(admin).delete(url).status_code == 403
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.get("/api/v1/workspaces").json() == []


@pytest.fixture
def team(workspace, owner, make_user, add_member, client_for):
    admin = make_user(email="admin@example.com")
    member = make_user(email="member@example.com")
    return {
        "owner": workspace.members.get(user=owner),
        "admin": add_member(workspace, admin, "admin"),
        "member": add_member(workspace, member, "member"),
        "as_owner": client_for(owner),
        "as_admin": client_for(admin),
        "as_member": client_for(member),
    }


def member_url(workspace, membership):
    return f"/api/v1/workspaces/{workspace.pk}/members/{membership.pk}"


def test_members_list_is_visible_to_members(team, workspace):
    rows = team["as_member"].get(f"/api/v1/workspaces/{workspace.pk}/members").json()["results"]
    assert {row["role"] for row in rows} == {"owner", "admin", "member"}


def test_role_changes_follow_the_role_rules(team, workspace):
    as_admin, as_member = team["as_admin"], team["as_member"]
    # Members cannot change roles; admins can promote members to admin but not to owner.
    assert (
        as_member.patch(member_url(workspace, team["admin"]), {"role": "member"}).status_code == 403
    )
    assert (
        as_admin.patch(member_url(workspace, team["member"]), {"role": "admin"}).status_code == 200
    )
    assert (
        as_admin.patch(member_url(workspace, team["member"]), {"role": "owner"}).status_code == 403
    )
    # Admins cannot touch owners.
    assert (
        as_admin.patch(member_url(workspace, team["owner"]), {"role": "member"}).status_code == 403
    )
    # Owners can make owners.
    response = team["as_owner"].patch(member_url(workspace, team["admin"]), {"role": "owner"})
    assert response.status_code == 200 and response.json()["role"] == "owner"
    invalid = team["as_owner"].patch(member_url(workspace, team["admin"]), {"role": "king"})
    assert invalid.status_code == 400


def test_a_workspace_always_keeps_an_owner(team, workspace):
    as_owner = team["as_owner"]
    last = as_owner.patch(member_url(workspace, team["owner"]), {"role": "admin"})
    assert last.status_code == 409 and last.json()["error"]["code"] == "LAST_OWNER"
    assert as_owner.delete(member_url(workspace, team["owner"])).status_code == 409
    # With a second owner, the first may step down.
    as_owner.patch(member_url(workspace, team["admin"]), {"role": "owner"})
    assert (
        as_owner.patch(member_url(workspace, team["owner"]), {"role": "admin"}).status_code == 200
    )


def test_removal_rules(team, workspace):
    as_member = team["as_member"]
    assert as_member.delete(member_url(workspace, team["admin"])).status_code == 403
    assert team["as_admin"].delete(member_url(workspace, team["owner"])).status_code == 403
    # Anyone may leave.
    assert as_member.delete(member_url(workspace, team["member"])).status_code == 204
    assert as_member.get(f"/api/v1/workspaces/{workspace.pk}").status_code == 404
    team["member"].refresh_from_db()
    assert team["member"].status == "removed"


def test_invitation_lifecycle(team, workspace, make_user, client_for):
    url = f"/api/v1/workspaces/{workspace.pk}/invitations"
    assert team["as_member"].post(url, {"email": "x@example.com"}).status_code == 403
    created = team["as_admin"].post(url, {"email": "New@Example.com", "role": "admin"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert created.json()["email"] == "new@example.com"
    listed = team["as_admin"].get(url).json()["results"]
    assert listed[0]["status"] == "pending" and "token" not in listed[0]
    assert not Invitation.objects.filter(token_hash=token).exists()  # only the hash is stored

    stranger = client_for(make_user(email="other@example.com"))
    assert stranger.post(f"/api/v1/invitations/{token}/accept").status_code == 403

    invitee = client_for(make_user(email="new@example.com"))
    accepted = invitee.post(f"/api/v1/invitations/{token}/accept")
    assert accepted.status_code == 200 and accepted.json()["role"] == "admin"
    again = invitee.post(f"/api/v1/invitations/{token}/accept")
    assert again.status_code == 409 and again.json()["error"]["code"] == "INVITATION_ALREADY_USED"
    assert invitee.post("/api/v1/invitations/unknown-token/accept").status_code == 404


def test_expired_invitations_and_owner_invites(team, workspace, make_user, client_for):
    url = f"/api/v1/workspaces/{workspace.pk}/invitations"
    assert (
        team["as_admin"].post(url, {"email": "o@example.com", "role": "owner"}).status_code == 403
    )
    token = team["as_owner"].post(url, {"email": "late@example.com"}).json()["token"]
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    late = client_for(make_user(email="late@example.com"))
    response = late.post(f"/api/v1/invitations/{token}/accept")
    assert response.status_code == 409 and response.json()["error"]["code"] == "INVITATION_EXPIRED"
    assert not WorkspaceMember.objects.filter(user__email="late@example.com").exists()
    existing = team["as_owner"].post(url, {"email": "member@example.com"})
    assert existing.status_code == 409 and existing.json()["error"]["code"] == "ALREADY_MEMBER"


def test_pagination_defaults_and_clamps(api, workspace, make_user, add_member):
    for i in range(25):
        add_member(workspace, make_user(email=f"m{i}@example.com"))
    url = f"/api/v1/workspaces/{workspace.pk}/members"
    first = api.get(url).json()
    assert first["count"] == 26 and len(first["results"]) == 20 and first["next"]
    assert len(api.get(url + "?page_size=1000").json()["results"]) == 26
    assert len(api.get(url + "?page=2&page_size=10").json()["results"]) == 10
    assert api.get(url + "?page=99").status_code == 404
