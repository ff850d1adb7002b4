"""Every route answers every method without a server error: as the workspace's owner aiming
at its real objects, as a stranger, and anonymously; with an empty body and with a body that
is not what the route expects."""

import pytest
from django.urls import get_resolver

from apps.workspaces.tests.test_tenancy import fill_template, object_id_in, walk

METHODS = ("get", "post", "put", "patch", "delete", "options", "head")
BODIES = ({}, {"unexpected": ["x"] * 3, "id": "not-a-uuid"})


def every_route():
    for template, pattern in walk(get_resolver().url_patterns):
        callback = pattern.callback
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        yield template, view_class


@pytest.fixture
def stocked(workspace, owner):
    """The workspace with one object of each kind, so routes aim at real ids."""
    from apps.ai.services import seed_example_templates
    from apps.campaigns.services import create_campaign

    seed_example_templates(workspace, actor=owner)
    create_campaign(
        workspace=workspace, actor=owner, name="Launch", topic="news",
        contents=[{"title": "Hi", "subtitle": "There"}],
    )  # fmt: skip
    return workspace


def test_no_route_answers_any_method_with_a_server_error(stocked, api, client_for, make_user):
    from apps.notifications.dispatcher import beat

    beat("test-dispatcher")  # /readyz is ready: its 503 would be an answer, not a failure
    stranger = client_for(make_user(email="stranger@example.com"))
    anonymous = client_for()
    for client in (api, stranger, anonymous):
        client.raise_request_exception = False  # a server error is a 500 to record, not a crash
    failures = []
    for template, view_class in every_route():
        lookup = getattr(view_class, "lookup_url_kwarg", None) or "pk"
        ids = {"workspace_id": str(stocked.pk), lookup: object_id_in(view_class, stocked),
               "pk": object_id_in(view_class, stocked), "token": "not-a-token"}  # fmt: skip
        url = fill_template(template, ids, stocked)
        for client in (api, stranger, anonymous):
            for method in METHODS:
                for body in BODIES:
                    response = getattr(client, method)(url, body, format="json")
                    if response.status_code >= 500:
                        failures.append((method.upper(), url, response.status_code))
    assert sorted(set(failures)) == [], "\n".join(map(str, sorted(set(failures))))


def test_options_describes_a_view_without_objects(api):
    response = api.options("/api/v1/integrations/firebase")
    assert response.status_code == 200
    assert "project_id" in response.json()["actions"]["PUT"]


@pytest.mark.django_db
def test_pages_outside_the_api_refuse_other_methods_in_the_contract(client):
    for path in ("/healthz", "/readyz", "/metrics", "/api/schema", "/api/docs"):
        response = client.post(path)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD", path
        assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
