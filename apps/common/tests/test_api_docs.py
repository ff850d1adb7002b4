"""The published OpenAPI schema is documentation for the API's users: every operation has its
own summary and description (never a developer docstring, never text copied onto several
operations), workspace-scoped operations declare the X-Workspace-ID security scheme, a
resource's path parameter has one name everywhere, and the request examples are valid — and
work when sent.

Each check is a function returning the problems it finds; the tests below run it on the
generated schema (no problem allowed) and on a copy broken on purpose (the problem found)."""

import copy
import inspect
import itertools
import re
import uuid
from datetime import datetime
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft7Validator, FormatChecker
from rest_framework.test import APIClient

from apps.common.scopes import declared_scope
from apps.workspaces.tenancy import WorkspaceScopedMixin

METHODS = ("get", "post", "put", "patch", "delete")
WORKSPACE_SCHEME = {"type": "apiKey", "in": "header", "name": "X-Workspace-ID"}
PARAMETER = re.compile(r"\{(\w+)\}")
# The requests a newcomer makes first, each of which must carry at least one example.
MUST_HAVE_EXAMPLES = [
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/workspaces"),
    ("put", "/api/v1/integrations/firebase"),
    ("post", "/api/v1/templates"),
    ("post", "/api/v1/ai/generate"),
    ("post", "/api/v1/campaigns"),
    ("post", "/api/v1/campaigns/{campaign_id}/schedule"),
    ("post", "/api/v1/events"),
]


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def view_of(path: str):
    """The view class serving a schema path, and the callback's action map (viewsets)."""
    match = resolve(PARAMETER.sub(lambda _: str(uuid.uuid4()), path))
    callback = match.func
    return getattr(callback, "cls", None) or callback.view_class, getattr(callback, "actions", {})


def normalized(text: str) -> str:
    return " ".join((text or "").split())


def developer_docstrings(schema) -> set[str]:
    """The paragraphs of every docstring a schema generator could show: each API view's
    classes (its whole MRO) and its handler methods."""
    found = set()
    for method, path, _ in operations(schema):
        view_class, actions = view_of(path)
        handler = getattr(view_class, actions.get(method, method), None)
        for owner in [*view_class.__mro__, handler]:
            if owner is None or owner is object:
                continue
            for paragraph in re.split(r"\n\s*\n", inspect.getdoc(owner) or ""):
                if len(normalized(paragraph)) >= 20:
                    found.add(normalized(paragraph))
    return found


# --- the checks ---------------------------------------------------------------------------------
def undocumented(schema) -> list[str]:
    problems = []
    for method, path, operation in operations(schema):
        summary = normalized(operation.get("summary"))
        description = normalized(operation.get("description"))
        if not summary:
            problems.append(f"{method.upper()} {path}: no summary")
        if len(description) < 40:
            problems.append(f"{method.upper()} {path}: no description (or a few words)")
        elif description == summary:
            problems.append(f"{method.upper()} {path}: the description only repeats the summary")
    return problems


def leaked_docstrings(schema) -> list[str]:
    docstrings = developer_docstrings(schema)
    problems = []
    for method, path, operation in operations(schema):
        for field in ("summary", "description"):
            text = normalized(operation.get(field))
            leaks = sorted(doc for doc in docstrings if doc in text)
            if leaks:
                problems.append(f"{method.upper()} {path}: {field} shows a docstring: {leaks[0]!r}")
    return problems


def shared_texts(schema) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for method, path, operation in operations(schema):
        for field in ("summary", "description"):
            key = (field, normalized(operation.get(field)))
            if not key[1]:
                continue
            label = f"{method.upper()} {path}"
            if key in seen:
                problems.append(f"{label}: the same {field} as {seen[key]}")
            seen.setdefault(key, label)
    return problems


def workspace_security_problems(schema) -> list[str]:
    problems = []
    schemes = schema.get("components", {}).get("securitySchemes", {})
    names = [name for name, scheme in schemes.items() if WORKSPACE_SCHEME.items() <= scheme.items()]
    if len(names) != 1:
        return [f"one apiKey security scheme for the X-Workspace-ID header, not {names}"]
    (name,) = names
    scoped = 0
    for method, path, operation in operations(schema):
        view_class, actions = view_of(path)
        label = f"{method.upper()} {path}"
        requirements = operation.get("security", schema.get("security", []))
        view = SimpleNamespace(
            api_key_scopes=getattr(view_class, "api_key_scopes", None), action=actions.get(method)
        )
        needs_workspace = (
            issubclass(view_class, WorkspaceScopedMixin) and view_class.workspace_source == "header"
        )
        if needs_workspace:
            scoped += 1
            # Both together: one requirement object naming the token and the workspace; or
            # an API key alone (it names its workspace), where the route accepts keys.
            accepts_keys = declared_scope(view, method) is not None
            allowed = [{"jwtAuth", name}, *([{"ApiKey"}] if accepts_keys else [])]
            if sorted(map(sorted, map(set, requirements))) != sorted(map(sorted, allowed)):
                wanted = f"{{jwtAuth, {name}}}" + (", {ApiKey}" if accepts_keys else "")
                problems.append(f"{label}: needs [{wanted}], has {requirements}")
        elif any(name in requirement for requirement in requirements):
            problems.append(f"{label}: needs no workspace but asks for {name}")
        if any(
            p.get("name", "").lower() == "x-workspace-id" for p in operation.get("parameters", [])
        ):
            problems.append(f"{label}: X-Workspace-ID is a security scheme, not a parameter")
    if not scoped:
        problems.append("no workspace-scoped operation at all")
    return problems


def path_parameter_problems(schema) -> list[str]:
    """A parameter is named by the collection before it (`campaigns/{campaign_id}`): one
    name per collection in every path, one collection per name; and each is described."""
    names: dict[str, set[str]] = {}
    collections: dict[str, set[str]] = {}
    problems = []
    for method, path, operation in operations(schema):
        segments = path.strip("/").split("/")
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        in_path = set(PARAMETER.findall(path))
        if declared != in_path:
            problems.append(f"{method.upper()} {path}: declares {declared}, path has {in_path}")
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and not normalized(parameter.get("description")):
                problems.append(f"{method.upper()} {path}: {{{parameter['name']}}} undescribed")
        for before, segment in itertools.pairwise(segments):
            found = PARAMETER.fullmatch(segment)
            if found:
                names.setdefault(before, set()).add(found[1])
                collections.setdefault(found[1], set()).add(before)
    problems += [f"/{c}/ is followed by {sorted(n)}" for c, n in names.items() if len(n) > 1]
    problems += [f"{{{n}}} follows {sorted(c)}" for n, c in collections.items() if len(c) > 1]
    return problems


def _json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable`, and no undeclared properties."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if node.get("type") == "object" and "properties" in node:
        node.setdefault("additionalProperties", False)
    if node.pop("nullable", False):
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        if "type" in node:
            node["type"] = [node["type"], "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


@FORMATS.checks("uri")
def _uri(value) -> bool:
    return not isinstance(value, str) or bool(urlparse(value).scheme and urlparse(value).netloc)


def request_examples(schema):
    for method, path, operation in operations(schema):
        content = operation.get("requestBody", {}).get("content", {})
        for media_type, body in content.items():
            for name, example in body.get("examples", {}).items():
                yield method, path, media_type, body["schema"], name, example["value"]


def invalid_examples(schema) -> list[str]:
    components = _json_schema(schema["components"])
    problems = []
    for method, path, media_type, body_schema, name, value in request_examples(schema):
        validator = Draft7Validator(
            {"allOf": [_json_schema(body_schema)], "components": components},
            format_checker=FORMATS,
        )
        for error in validator.iter_errors(value):
            where = "/".join(map(str, error.absolute_path)) or "(body)"
            problems.append(
                f"{method.upper()} {path} example {name!r} ({media_type}) at {where}: "
                f"{error.message}"
            )
    return problems


def missing_examples(schema) -> list[str]:
    with_examples = {(method, path) for method, path, *_ in request_examples(schema)}
    return [
        f"{m.upper()} {p}: no request example"
        for m, p in MUST_HAVE_EXAMPLES
        if (m, p) not in with_examples
    ]


# --- the generated schema passes every check ----------------------------------------------------
def test_every_operation_has_a_summary_and_a_description(schema):
    assert len(list(operations(schema))) > 50
    assert undocumented(schema) == []


def test_no_docstring_is_shown_as_documentation(schema):
    assert len(developer_docstrings(schema)) > 20  # there are docstrings that could leak
    assert leaked_docstrings(schema) == []


def test_no_two_operations_share_a_summary_or_a_description(schema):
    assert shared_texts(schema) == []


def test_workspace_scoped_operations_require_the_workspace_scheme_with_the_token(schema):
    assert workspace_security_problems(schema) == []


def test_path_parameters_are_named_consistently(schema):
    assert path_parameter_problems(schema) == []


def test_the_main_requests_have_examples_and_every_example_is_valid(schema):
    assert missing_examples(schema) == []
    assert invalid_examples(schema) == []


# --- each check finds what it is for ------------------------------------------------------------
def broken(schema, method: str, path: str):
    """A copy of the schema, and the given operation in it."""
    copied = copy.deepcopy(schema)
    return copied, copied["paths"][path][method]


def test_the_checks_find_missing_and_repeated_text(schema):
    copied, operation = broken(schema, "post", "/api/v1/campaigns/{campaign_id}/cancel")
    del operation["summary"]
    operation["description"] = "Cancel."
    assert undocumented(copied) == [
        "POST /api/v1/campaigns/{campaign_id}/cancel: no summary",
        "POST /api/v1/campaigns/{campaign_id}/cancel: no description (or a few words)",
    ]
    copied, operation = broken(schema, "post", "/api/v1/campaigns/{campaign_id}/duplicate")
    operation["description"] = schema["paths"]["/api/v1/campaigns"]["get"]["description"]
    assert shared_texts(copied) == [
        "POST /api/v1/campaigns/{campaign_id}/duplicate: the same description as "
        "GET /api/v1/campaigns"
    ]


def test_the_checks_find_a_leaked_docstring(schema):
    from apps.campaigns.api import CampaignViewSet

    docstring = normalized(inspect.getdoc(CampaignViewSet))
    copied, operation = broken(schema, "post", "/api/v1/campaigns/{campaign_id}/cancel")
    operation["description"] = f"{operation['description']}\n\n{inspect.getdoc(CampaignViewSet)}"
    assert leaked_docstrings(copied) == [
        f"POST /api/v1/campaigns/{{campaign_id}}/cancel: description shows a docstring: "
        f"{docstring!r}"
    ]


def test_the_checks_find_a_workspace_operation_without_the_workspace_scheme(schema):
    copied, operation = broken(schema, "get", "/api/v1/campaigns")
    operation["security"] = [{"jwtAuth": []}]
    operation.setdefault("parameters", []).append(
        {"in": "header", "name": "X-Workspace-ID", "required": True, "schema": {"type": "string"}}
    )
    copied["paths"]["/api/v1/me"]["get"]["security"] = [{"jwtAuth": [], "WorkspaceID": []}]
    assert workspace_security_problems(copied) == [
        "GET /api/v1/campaigns: needs [{jwtAuth, WorkspaceID}, {ApiKey}], has [{'jwtAuth': []}]",
        "GET /api/v1/campaigns: X-Workspace-ID is a security scheme, not a parameter",
        "GET /api/v1/me: needs no workspace but asks for WorkspaceID",
    ]
    # Either scheme alone (two alternatives) is not both together.
    copied, operation = broken(schema, "get", "/api/v1/campaigns")
    operation["security"] = [{"jwtAuth": []}, {"WorkspaceID": []}]
    assert len(workspace_security_problems(copied)) == 1
    # An API key offered where the route refuses keys (ingest keys are people's business).
    copied, operation = broken(schema, "get", "/api/v1/ingest-keys")
    operation["security"].append({"ApiKey": []})
    assert len(workspace_security_problems(copied)) == 1


def test_the_checks_find_a_resource_under_two_names(schema):
    copied = copy.deepcopy(schema)
    old = "/api/v1/campaigns/{campaign_id}/jobs"
    item = copied["paths"].pop(old)
    for parameter in item["get"]["parameters"]:
        if parameter["name"] == "campaign_id":
            parameter["name"] = "id"
    copied["paths"]["/api/v1/campaigns/{id}/jobs"] = item
    assert path_parameter_problems(copied) == ["/campaigns/ is followed by ['campaign_id', 'id']"]
    # A path whose declared parameters do not match it.
    copied, operation = broken(schema, "get", "/api/v1/templates/{template_id}")
    for parameter in operation["parameters"]:
        parameter["name"] = "id" if parameter["name"] == "template_id" else parameter["name"]
    assert path_parameter_problems(copied) == [
        "GET /api/v1/templates/{template_id}: declares {'id'}, path has {'template_id'}"
    ]
    copied, operation = broken(schema, "post", "/api/v1/invitations/{token}/accept")
    path_parameter = next(p for p in operation["parameters"] if p["in"] == "path")
    del path_parameter["description"]
    assert path_parameter_problems(copied) == [
        "POST /api/v1/invitations/{token}/accept: {token} undescribed"
    ]


def test_the_checks_find_an_invalid_or_missing_example(schema):
    copied, operation = broken(schema, "post", "/api/v1/campaigns/{campaign_id}/schedule")
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    examples["Once"]["value"] = {"scheduled_at": "2035-03-05T09:00:00", "when": "soon"}
    problems = invalid_examples(copied)
    assert len(problems) == 2, problems
    assert "'2035-03-05T09:00:00' is not a 'date-time'" in problems[0] + problems[1]
    assert "'when' was unexpected" in problems[0] + problems[1]
    del operation["requestBody"]["content"]["application/json"]["examples"]
    assert missing_examples(copied) == [
        "POST /api/v1/campaigns/{campaign_id}/schedule: no request example"
    ]


# --- the examples work --------------------------------------------------------------------------
def example(schema, method: str, path: str, name: str):
    body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]
    return copy.deepcopy(body["examples"][name]["value"])


@pytest.mark.django_db
def test_the_examples_work_when_sent_in_order(schema, settings):
    """Sign up, sign in, create a workspace, a template, copy and campaigns, schedule them
    once and on a rule, create an ingest key and report events — each body an example."""
    settings.AI_PROVIDER = "offline"
    from apps.integrations.firebase.testing import make_firebase_config
    from apps.workspaces.models import Workspace

    client = APIClient()

    def send(method, path, name, status, url=None, **headers):
        body = example(schema, method, path, name)
        response = getattr(client, method)(url or path, body, format="json", **headers)
        assert response.status_code == status, (method, path, name, response.content)
        return response.json()

    signed_up = send("post", "/api/v1/auth/register", "SignUp", 201)
    send("post", "/api/v1/auth/token", "SignIn", 200)
    workspace_id = signed_up["workspace"]["id"]
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {signed_up['access']}", HTTP_X_WORKSPACE_ID=workspace_id
    )
    send("post", "/api/v1/workspaces", "AWorkspace", 201)
    send("post", "/api/v1/templates", "ATemplate", 201)
    for name in ("ThreeVariants", "ShortCopy"):
        send("post", "/api/v1/ai/generate", name, 200)
    invitations = f"/api/v1/workspaces/{workspace_id}/invitations"
    send("post", "/api/v1/workspaces/{workspace_id}/invitations", "InviteAnAdmin", 201, invitations)

    make_firebase_config(Workspace.objects.get(pk=workspace_id))
    schedule = "/api/v1/campaigns/{campaign_id}/schedule"
    for name, source in [
        ("Once", "ToATopic"),
        ("Recurring", "ToATopic"),
        ("AsStored", "ToAConditionOnASchedule"),
    ]:
        campaign = send("post", "/api/v1/campaigns", source, 201)
        scheduled = send(
            "post", schedule, name, 200, f"/api/v1/campaigns/{campaign['id']}/schedule"
        )
        assert scheduled["status"] == "scheduled" and scheduled["next_run_at"], scheduled
        assert bool(scheduled["rrule"]) == (name != "Once"), scheduled

    key = send("post", "/api/v1/ingest-keys", "IOSApp", 201)
    client.credentials(HTTP_X_PUSHPILOT_KEY=key["secret"])
    reported = send("post", "/api/v1/events", "OpenedThenConverted", 202)
    assert reported["accepted"] + reported["rejected"] == 2, reported
