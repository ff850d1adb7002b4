"""Tenancy cannot be forgotten: every API route is either explicitly public/per-user or built
on the workspace-scoped base, and a user of workspace B can neither see nor change A's data."""

import uuid
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from apps.workspaces.tenancy import WorkspaceScopedMixin

# Routes that are not about one workspace, by URL name. Adding one here is a decision that
# a reviewer must see: each entry says why it is not workspace-scoped.
NOT_WORKSPACE_SCOPED = {
    "auth-register": "anonymous: creates the user and their workspace",
    "auth-token": "anonymous: credentials",
    "auth-token-refresh": "anonymous: credentials",
    "auth-logout": "anonymous: possession of the refresh token",
    "auth-oauth-google": "anonymous: credentials",
    "auth-oauth-apple": "anonymous: credentials",
    "me": "the caller's own profile",
    "workspace-list": "the caller's memberships; creating a new workspace",
    "invitation-accept": "the token names the workspace; the invitee is not a member yet",
    "events-ingest": "the ingest key names the workspace (apps send no JWT)",
    "device-register": "the ingest key names the workspace (apps send no JWT)",
    "device-batch": "the ingest key names the workspace (apps send no JWT)",
    "device-token": "the ingest key names the workspace (apps send no JWT)",
}
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Route:
    name: str
    template: str
    view_class: type
    methods: list[str]


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def api_routes() -> list[Route]:
    routes = []
    for template, pattern in walk(get_resolver().url_patterns):
        if not template.startswith("api/v1/"):
            continue
        callback = pattern.callback
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        actions = getattr(callback, "actions", None)
        if actions:
            methods = [m for m in actions if m in METHODS]
        else:
            methods = [m for m in METHODS if view_class and hasattr(view_class, m)]
        routes.append(Route(pattern.name, template, view_class, methods))
    return routes


def test_every_api_route_is_classified():
    routes = api_routes()
    assert len(routes) > len(NOT_WORKSPACE_SCOPED)
    unscoped = [
        route.template
        for route in routes
        if route.name not in NOT_WORKSPACE_SCOPED
        and not (route.view_class and issubclass(route.view_class, WorkspaceScopedMixin))
    ]
    assert unscoped == [], f"workspace-scoped routes not built on WorkspaceScopedMixin: {unscoped}"
    named = {route.name for route in routes}
    assert set(NOT_WORKSPACE_SCOPED) <= named, "stale entries in NOT_WORKSPACE_SCOPED"


def test_the_base_cannot_be_bypassed():
    from apps.workspaces.tenancy import WorkspaceScopedViewSet

    for sealed in ("get_queryset", "check_permissions", "initial"):
        with pytest.raises(TypeError, match=sealed):
            type("Sneaky", (WorkspaceScopedViewSet,), {sealed: lambda self, *a: None})


# --- the cross-workspace matrix -----------------------------------------------------------------
def workspace_rows(workspace) -> dict[str, list[tuple]]:
    """Every row that belongs to `workspace`, with its update time: a snapshot to compare."""
    snapshot = {}
    for model in apps.get_models():
        fields = {field.name for field in model._meta.get_fields()}
        if "workspace" not in fields:
            continue
        manager = getattr(model, "all_objects", model._default_manager)
        values = ["pk", *(["updated_at"] if "updated_at" in fields else [])]
        snapshot[model._meta.label] = sorted(
            manager.filter(workspace=workspace).values_list(*values), key=str
        )
    from apps.workspaces.models import Workspace

    snapshot["workspace"] = list(Workspace.all_objects.filter(pk=workspace.pk).values_list())
    return snapshot


def object_id_in(view_class, workspace) -> str:
    """An id of an object of the view's model that lives in `workspace` (random if none)."""
    queryset = getattr(view_class, "queryset", None)
    if queryset is not None:
        field = getattr(view_class, "workspace_field", "workspace")
        obj = queryset.model._default_manager.filter(**{field: workspace.pk}).first()
        if obj is not None:
            return str(obj.pk)
    return str(uuid.uuid4())


def object_for_kwarg(name: str, workspace) -> str:
    """`campaign_id` -> the id of a Campaign of `workspace` (random if there is none)."""
    wanted = name.removesuffix("_id")
    for model in apps.get_models():
        if model._meta.model_name == wanted:
            obj = model._default_manager.filter(workspace=workspace).first()
            if obj is not None:
                return str(obj.pk)
    return str(uuid.uuid4())


def fill_template(template: str, values: dict[str, str], workspace=None) -> str:
    import re

    for name in re.findall(r"<uuid:(\w+)>", template):
        if name not in values and workspace is not None:
            values = {**values, name: object_for_kwarg(name, workspace)}
    path = template
    for name, value in values.items():
        path = path.replace(f"<uuid:{name}>", value).replace(f"<str:{name}>", value)
        path = path.replace(f"(?P<{name}>[^/.]+)", value)
    return "/" + path.replace("^", "").replace("$", "")


@pytest.fixture
def two_workspaces(make_user, make_workspace, add_member, client_for):
    alice, bob = make_user(email="alice@a.test"), make_user(email="bob@b.test")
    workspace_a = make_workspace(owner=alice, name="A")
    add_member(workspace_a, make_user(email="a-member@a.test"), "member")
    from apps.workspaces.services import invite

    invite(actor_membership=workspace_a.members.get(user=alice), email="new@a.test", role="admin")
    # One of each kind of object, so that the matrix aims at real ids of A.
    from apps.ai.services import seed_example_templates
    from apps.campaigns.services import create_campaign

    seed_example_templates(workspace_a, actor=alice)
    create_campaign(
        workspace=workspace_a, actor=alice, name="A's campaign", topic="news",
        contents=[{"title": "Hi", "subtitle": "There"}],
    )  # fmt: skip
    from apps.devices.services import register_one

    register_one(workspace_id=workspace_a.pk, payload=A_DEVICE)
    workspace_b = make_workspace(owner=bob, name="B")
    return workspace_a, workspace_b, client_for(bob)


A_DEVICE = {"token": "a-device:APA91b" + "a" * 60, "time_zone": "UTC", "language": "en",
            "platform": "ios", "topics": ["news"]}  # fmt: skip


def test_another_workspaces_app_cannot_touch_its_devices(two_workspaces, app_client, make_key):
    from apps.devices.models import Device

    workspace_a, workspace_b, _ = two_workspaces
    before = workspace_rows(workspace_a)
    app_of_b = app_client(make_key(workspace_b).secret)
    assert app_of_b.delete(f"/api/v1/devices/{A_DEVICE['token']}").status_code == 404
    # The same token registered by B's app is B's own device, not A's.
    assert app_of_b.post("/api/v1/devices", A_DEVICE, format="json").status_code == 201
    assert Device.objects.filter(workspace=workspace_b).count() == 1
    assert workspace_rows(workspace_a) == before


def test_a_member_of_b_cannot_reach_anything_of_a(two_workspaces):
    workspace_a, workspace_b, bob = two_workspaces
    before = workspace_rows(workspace_a)
    checked = 0
    for route in api_routes():
        if not (route.view_class and issubclass(route.view_class, WorkspaceScopedMixin)):
            continue
        lookup = getattr(route.view_class, "lookup_url_kwarg", None) or "pk"
        from_path = route.view_class.workspace_source == "path"
        ids = {
            "workspace_id": str(workspace_a.pk),
            lookup: object_id_in(route.view_class, workspace_a),
            "pk": object_id_in(route.view_class, workspace_a),
        }
        url = fill_template(route.template, ids, workspace_a)
        for method in route.methods:
            send = getattr(bob, method)
            if from_path:
                # The workspace is in the URL: A's workspace id is simply not found.
                response = send(url, {}, format="json")
                assert response.status_code == 404, (method, url, response.content)
                assert response.json()["error"]["code"] == "NOT_FOUND"
                if f"<uuid:{lookup}>" in route.template:
                    # B's own workspace in the URL, A's object id: still not found.
                    own = fill_template(
                        route.template, {**ids, "workspace_id": str(workspace_b.pk)}
                    )
                    response = send(own, {}, format="json")
                    assert response.status_code == 404, (method, own, response.content)
            else:
                # Asking to act in A: refused, the same answer as for a workspace that does not exist.
                response = send(url, {}, format="json", HTTP_X_WORKSPACE_ID=str(workspace_a.pk))
                assert response.status_code == 403, (method, url, response.content)
                assert response.json()["error"]["code"] == "WORKSPACE_ACCESS_DENIED"
                missing = send(url, {}, format="json", HTTP_X_WORKSPACE_ID=str(uuid.uuid4()))
                assert missing.json() == response.json()
                if "<" in route.template or "(?P<" in route.template:
                    # Acting in B on an object of A: it does not exist as far as B can tell.
                    response = send(url, {}, format="json", HTTP_X_WORKSPACE_ID=str(workspace_b.pk))
                    assert response.status_code == 404, (method, url, response.content)
            checked += 1
    assert checked >= 8
    assert workspace_rows(workspace_a) == before


def test_workspace_header_rules(api, client_for, owner):
    no_header = client_for(owner)
    response = no_header.get("/api/v1/audit-logs")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WORKSPACE_REQUIRED"
    garbage = no_header.get("/api/v1/audit-logs", HTTP_X_WORKSPACE_ID="not-a-uuid")
    assert garbage.json()["error"]["code"] == "WORKSPACE_ACCESS_DENIED"
    workspace_id = api.defaults["HTTP_X_WORKSPACE_ID"]
    by_query = no_header.get(f"/api/v1/audit-logs?workspace_id={workspace_id}")
    assert by_query.status_code == 200


def test_removed_members_and_deleted_workspaces_lose_access(
    workspace, make_user, add_member, client_for
):
    user = make_user(email="gone@example.com")
    membership = add_member(workspace, user, "admin")
    client = client_for(user, workspace)
    assert client.get("/api/v1/audit-logs").status_code == 200
    membership.status = "removed"
    membership.save()
    assert client.get("/api/v1/audit-logs").json()["error"]["code"] == "WORKSPACE_ACCESS_DENIED"
    membership.status = "active"
    membership.save()
    workspace.is_deleted, workspace.deleted_at = True, timezone.now()
    workspace.save()
    assert client.get("/api/v1/audit-logs").status_code == 403
