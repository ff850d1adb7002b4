"""Every scope against every route, in the style of the tenancy test: the URL resolver is
walked, and each route + method either declares the scope an API key needs (and then a key
gets through exactly when one of its scopes grants it), or is listed below as refusing or
ignoring keys, with the reason. A new route that is neither fails here."""

import uuid
from types import SimpleNamespace

import pytest

from apps.common.scopes import declared_scope
from apps.workspaces.authentication import ApiKeyAuthentication
from apps.workspaces.models import ROLE_RANK, ApiKeyScope, Role
from apps.workspaces.tenancy import WorkspaceScopedMixin
from apps.workspaces.tests.test_tenancy import (
    A_DEVICE,
    api_routes,
    fill_template,
    object_id_in,
    walk,
    workspace_rows,
)

# Routes that authenticate with something else entirely: an API key is not looked at.
IGNORES_API_KEYS = {
    "auth-register": "anonymous: creates a user",
    "auth-token": "anonymous: a person's credentials",
    "auth-token-refresh": "anonymous: a person's refresh token",
    "auth-logout": "anonymous: possession of the refresh token",
    "auth-oauth-google": "anonymous: a person's Google credentials",
    "auth-oauth-apple": "anonymous: a person's Apple credentials",
    "events-ingest": "apps report events with their ingest key (X-PushPilot-Key) only",
}
# Routes that take a person's bearer token and refuse API keys (403), with the reason.
REFUSES_API_KEYS = {
    "me": "a person's own profile; a key is nobody's",
    "workspace-list": "a person's memberships; creating workspaces",
    "workspace-detail": "renaming, deleting and ownership of the workspace are people's business",
    "workspace-members": "people: members and roles",
    "workspace-member": "people: members and roles",
    "workspace-invitations": "people: invitations",
    "invitation-accept": "an invitation is accepted by the person invited",
    "firebase-config": "a secret: the Firebase service account",
    "firebase-test": "part of managing the Firebase connection (admins)",
    "ingest-key-list": "secrets: ingest keys",
    "ingest-key-detail": "secrets: ingest keys",
    "ingest-key-revoke": "secrets: ingest keys",
    "ingest-key-rotate": "secrets: ingest keys",
    "api-key-list": "secrets: a key cannot mint keys",
    "api-key-detail": "secrets: a key cannot read or revoke keys",
    "api-key-rotate": "secrets: a key cannot rotate keys",
    "campaign-approve": "an approval is an admin's decision",
    "campaign-reject": "an approval is an admin's decision",
    "send-policy": "the workspace's send policies are its admins' settings",
    "retention-policy": "the workspace's retention windows are its admins' settings",
    "webhook-endpoint-list": "webhook endpoints carry signing secrets (admins)",
    "webhook-endpoint-detail": "webhook endpoints carry signing secrets (admins)",
    "webhook-endpoint-deliveries": "part of managing webhook endpoints (admins)",
    "webhook-endpoint-enable": "part of managing webhook endpoints (admins)",
    "webhook-endpoint-rotate-secret": "secrets: webhook signing secrets",
    "webhook-endpoint-test": "part of managing webhook endpoints (admins)",
    "webhook-redeliver": "part of managing webhook endpoints (admins)",
}
# Routes open to keys although their role for people is above `member`: the scope is the
# decision to let a key in, so each one is listed here with its reason.
KEYS_PAST_THE_ADMIN_ROLE = {
    "audit-log-list": "reading the trail is what audit:read is for (compliance exports)",
}
DETAIL_KWARGS = {"token": "not-a-real-invitation-token", "device_token": A_DEVICE["token"]}


def opens(scope: str, required: str) -> bool:
    """The documented rule, restated independently of the code: the scope itself, or the
    write scope of the same area for a read."""
    return scope == required or (
        required.endswith(":read") and scope == required.removesuffix(":read") + ":write"
    )


def required_scope(route, method) -> str | None:
    actions = getattr(route.callback, "actions", None) or {}
    view = SimpleNamespace(
        api_key_scopes=getattr(route.view_class, "api_key_scopes", None), action=actions.get(method)
    )
    return declared_scope(view, method)


def takes_keys(route) -> bool:
    return ApiKeyAuthentication in route.view_class.authentication_classes


def url_in(route, workspace) -> str:
    lookup = getattr(route.view_class, "lookup_url_kwarg", None) or "pk"
    ids = {"workspace_id": str(workspace.pk), lookup: object_id_in(route.view_class, workspace),
           "pk": object_id_in(route.view_class, workspace), **DETAIL_KWARGS}  # fmt: skip
    return fill_template(route.template, ids, workspace)


def requests(routes):
    """(route, method) pairs, deletions last: the other requests find A's objects alive."""
    pairs = [(route, method) for route in routes for method in route.methods]
    return sorted(pairs, key=lambda pair: pair[1] == "delete")


@pytest.fixture
def routes():
    from django.urls import get_resolver

    callbacks = {pattern.name: pattern.callback for _, pattern in walk(get_resolver().url_patterns)}
    found = api_routes()
    for route in found:  # the resolver's callback, for the viewsets' action maps
        route.callback = callbacks[route.name]
    return found


@pytest.fixture
def workspace_a(make_user, make_workspace):
    alice = make_user(email="alice@a.test")
    workspace = make_workspace(owner=alice, name="A")
    from apps.ai.services import seed_example_templates
    from apps.campaigns.services import create_campaign
    from apps.devices.services import register_one

    seed_example_templates(workspace, actor=alice)
    create_campaign(
        workspace=workspace, actor=alice, name="A's campaign", topic="news",
        contents=[{"title": "Hi", "subtitle": "There"}],
    )  # fmt: skip
    register_one(workspace_id=workspace.pk, payload=A_DEVICE)
    return workspace


def test_every_route_is_classified_for_api_keys(routes):
    unclassified, misdeclared, stale = [], [], set(IGNORES_API_KEYS) | set(REFUSES_API_KEYS)
    for route in routes:
        for method in route.methods:
            scope = required_scope(route, method)
            if not takes_keys(route):
                listed = route.name in IGNORES_API_KEYS
            elif scope is None:
                listed = route.name in REFUSES_API_KEYS
            else:
                listed = scope in ApiKeyScope.values
                if route.name in REFUSES_API_KEYS or route.name in IGNORES_API_KEYS:
                    misdeclared.append((route.name, method, scope))
            if not listed:
                unclassified.append((route.name, method.upper(), route.template))
            stale.discard(route.name)
    assert unclassified == [], (
        f"routes with neither an api_key_scopes entry nor a reason to refuse keys: {unclassified}"
    )
    assert misdeclared == [] and stale == set()
    declared = {required_scope(r, m) for r in routes for m in r.methods} - {None}
    assert declared == set(ApiKeyScope.values), "every scope opens at least one route"


def test_routes_above_the_member_role_take_keys_only_by_decision(routes):
    for route in routes:
        if not issubclass(route.view_class, WorkspaceScopedMixin):
            continue
        for method in route.methods:
            role = route.view_class.read_role if method == "get" else route.view_class.write_role
            if required_scope(route, method) and ROLE_RANK[Role(role)] > ROLE_RANK[Role.MEMBER]:
                assert route.name in KEYS_PAST_THE_ADMIN_ROLE, (route.name, method)


@pytest.mark.django_db(transaction=True)
def test_each_scope_opens_exactly_its_routes(routes, workspace_a, make_api_key, key_client):
    clients = {
        scope: key_client(make_api_key(workspace_a, [scope]).secret) for scope in ApiKeyScope.values
    }
    every_scope = key_client(make_api_key(workspace_a, ApiKeyScope.values).secret)
    anonymous = key_client("")  # sends an empty X-API-Key: the header alone, no credential
    anonymous.credentials()
    checked = {"granted": 0, "refused": 0, "ignored": 0}
    for route, method in requests(routes):
        url = url_in(route, workspace_a)
        required = required_scope(route, method)
        if not takes_keys(route):
            with_key = getattr(every_scope, method)(url, {}, format="json")
            without = getattr(anonymous, method)(url, {}, format="json")
            assert with_key.status_code == without.status_code, (method, url, with_key.content)
            checked["ignored"] += 1
            continue
        if required is None:
            response = getattr(every_scope, method)(url, {}, format="json")
            assert response.status_code == 403, (method, url, response.content)
            error = response.json()["error"]
            assert error["code"] == "PERMISSION_DENIED"
            assert "does not accept API keys" in error["message"], (method, url)
            checked["refused"] += 1
            continue
        for scope, client in clients.items():
            response = getattr(client, method)(url, {}, format="json")
            if opens(scope, required):
                assert response.status_code not in (401, 403), (
                    scope,
                    method,
                    url,
                    response.content,
                )
                checked["granted"] += 1
            else:
                assert response.status_code == 403, (scope, method, url, response.content)
                assert response.json()["error"] == {
                    "code": "PERMISSION_DENIED",
                    "message": f"This API key lacks the '{required}' scope.",
                    "details": {},
                }, (scope, method, url)
                checked["refused"] += 1
    assert checked["granted"] >= 30 and checked["refused"] >= 200 and checked["ignored"] >= 6


@pytest.mark.django_db(transaction=True)
def test_a_key_of_b_never_reaches_a(routes, workspace_a, make_user, make_workspace,
                                    make_api_key, key_client):  # fmt: skip
    workspace_b = make_workspace(owner=make_user(email="bob@b.test"), name="B")
    key_of_b = key_client(make_api_key(workspace_b, ApiKeyScope.values).secret)
    before = workspace_rows(workspace_a)
    checked = 0
    for route, method in requests(routes):
        if not takes_keys(route) or required_scope(route, method) is None:
            continue
        url = url_in(route, workspace_a)
        send = getattr(key_of_b, method)
        # Naming A: refused, the same answer as for a workspace that does not exist.
        response = send(url, {}, format="json", HTTP_X_WORKSPACE_ID=str(workspace_a.pk))
        assert response.status_code == 403, (method, url, response.content)
        assert response.json()["error"]["code"] == "WORKSPACE_ACCESS_DENIED"
        missing = send(url, {}, format="json", HTTP_X_WORKSPACE_ID=str(uuid.uuid4()))
        assert missing.json() == response.json()
        if "<" in route.template:
            # In B (the key's own), an object of A: it does not exist as far as B can tell.
            response = send(url, {}, format="json")
            assert response.status_code == 404, (method, url, response.content)
        checked += 1
    assert checked >= 25
    assert workspace_rows(workspace_a) == before


def test_the_readme_scope_table_is_the_declarations(routes):
    import re
    from pathlib import Path

    from django.conf import settings

    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = text.split("\n## API keys\n", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        match = re.match(r"\| `([a-z]+:[a-z]+)` \| (.*) \|$", line)
        if match:
            documented[match[1]] = set(re.findall(r"`([A-Z]+ /[^`]+)`", match[2]))
    declared: dict[str, set[str]] = {}
    for route in routes:
        path = re.sub(r"\(\?P<(\w+)>[^)]+\)", r"{\1}", route.template.removeprefix("api/v1/"))
        path = "/" + re.sub(r"<(?:uuid|str):(\w+)>", r"{\1}", path).strip("^$")
        for method in route.methods:
            if scope := required_scope(route, method) if takes_keys(route) else None:
                declared.setdefault(scope, set()).add(f"{method.upper()} {path}")
    assert documented == declared
