"""Idempotency-Key on every POST (apps/common/idempotency.py): a replay answers the first
response and executes nothing; another request with the key is a 422; a malformed key a 400;
keys are per workspace and caller; expired keys execute anew and are swept. Every POST route
honours the header (the URL resolver is walked, as test_tenancy does for tenancy)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.analytics.authentication import IngestKeyAuthentication
from apps.analytics.models import AnalyticsEvent, EventRollup, IngestKey
from apps.analytics.tests.factories import event
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common import idempotency
from apps.common.idempotency import IdempotentMixin
from apps.common.models import AuditLog, IdempotencyRecord
from apps.notifications.models import Delivery
from apps.workspaces.tests.test_tenancy import api_routes, fill_template, object_id_in

CAMPAIGNS = "/api/v1/campaigns"
KEY = "HTTP_IDEMPOTENCY_KEY"


def campaign_body(**overrides):
    return {
        "name": "Spring sale",
        "target": {"topic": "news"},
        "contents": [{"title": "Spring is here", "subtitle": "Everything 20% off"}],
        **overrides,
    }


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    return response.json()["error"]


def replayed(response) -> bool:
    return response.get(idempotency.REPLAYED_HEADER) == "true"


@pytest.fixture
def connected(workspace):
    from apps.integrations.firebase.testing import make_firebase_config

    make_firebase_config(workspace)
    return workspace


@pytest.fixture
def tomorrow():
    return (timezone.now() + timedelta(days=1)).replace(microsecond=0)


# --- every POST route honours the header --------------------------------------------------------
def post_routes():
    return [route for route in api_routes() if "post" in route.methods]


def test_every_post_route_is_built_on_the_idempotent_base():
    routes = post_routes()
    assert len(routes) > 20
    missing = [r.template for r in routes if not issubclass(r.view_class, IdempotentMixin)]
    assert missing == [], f"POST routes whose view does not honour Idempotency-Key: {missing}"


def test_every_post_route_refuses_a_malformed_key_before_running(
    api, app, workspace, owner, make_campaign_via_service
):
    """Authenticated as each route expects, a malformed key is a 400 on every POST route: the
    check runs on each of them (before the view: nothing is created)."""
    make_campaign_via_service()
    before = AuditLog.objects.count()
    failures = []
    for route in post_routes():
        lookup = getattr(route.view_class, "lookup_url_kwarg", None) or "pk"
        ids = {"workspace_id": str(workspace.pk), lookup: object_id_in(route.view_class, workspace),
               "token": "not-a-token"}  # fmt: skip
        url = fill_template(route.template, ids, workspace)
        app_facing = IngestKeyAuthentication in getattr(
            route.view_class, "authentication_classes", ()
        )
        client = app if app_facing else api
        for bad in ("x" * 256, "tab\tinside", "é"):
            response = client.post(url, {}, format="json", **{KEY: bad})
            code = response.json().get("error", {}).get("code") if response.content else None
            if response.status_code != 400 or code != "IDEMPOTENCY_KEY_INVALID":
                failures.append((route.template, bad[:5], response.status_code, code))
    assert failures == []
    assert AuditLog.objects.count() == before


@pytest.fixture
def make_campaign_via_service(workspace, owner):
    from apps.campaigns import services

    def _make(**overrides):
        return services.create_campaign(
            workspace=workspace, actor=owner, name="Launch", topic="news",
            contents=[{"title": "Hi", "subtitle": "There"}], **overrides,
        )  # fmt: skip

    return _make


def test_the_schema_documents_the_header_on_every_post_and_only_there():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    posts = headers = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            has = "Idempotency-Key" in names
            assert has == (method == "post"), (method, path)
            posts += method == "post"
            headers += has
            if method == "post":
                assert "422" in operation["responses"], path
    assert posts == headers > 20


# --- replays --------------------------------------------------------------------------------
def test_a_replayed_create_answers_the_first_response_and_creates_once(api, workspace):
    first = api.post(CAMPAIGNS, campaign_body(), HTTP_X_REQUEST_ID="first-req", **{KEY: "k-1"})
    assert first.status_code == 201, first.content
    assert not replayed(first)
    audits = AuditLog.objects.count()

    again = api.post(CAMPAIGNS, campaign_body(), HTTP_X_REQUEST_ID="retry-req", **{KEY: "k-1"})
    assert again.status_code == 201
    assert again.content == first.content
    assert replayed(again)
    assert again[idempotency.ORIGINAL_REQUEST_ID_HEADER] == "first-req"
    assert again["X-Request-ID"] == "retry-req"
    assert again["Content-Type"] == first["Content-Type"]
    assert Campaign.objects.filter(workspace=workspace).count() == 1
    assert AuditLog.objects.count() == audits  # nothing ran, nothing audited

    # The same body with its keys in another order and other spacing is the same request.
    reordered = {"contents": campaign_body()["contents"], "target": {"topic": "news"},
                 "name": "Spring sale"}  # fmt: skip
    assert replayed(api.post(CAMPAIGNS, reordered, **{KEY: "k-1"}))
    # The draft's structured-field form names the same key.
    assert replayed(api.post(CAMPAIGNS, campaign_body(), **{KEY: '"k-1"'}))
    assert Campaign.objects.filter(workspace=workspace).count() == 1

    # Without a key, or with another, each POST executes.
    assert not replayed(api.post(CAMPAIGNS, campaign_body()))
    assert not replayed(api.post(CAMPAIGNS, campaign_body(), **{KEY: "k-2"}))
    assert Campaign.objects.filter(workspace=workspace).count() == 3


def test_the_same_key_with_another_request_is_a_422_and_changes_nothing(api, workspace):
    assert api.post(CAMPAIGNS, campaign_body(), **{KEY: "k"}).status_code == 201
    error = assert_error(
        api.post(CAMPAIGNS, campaign_body(name="Other"), **{KEY: "k"}), 422,
        "IDEMPOTENCY_KEY_REUSED",
    )  # fmt: skip
    assert "different request" in error["message"]
    campaign_id = Campaign.objects.get().pk
    # Another path with the same key is another request too.
    assert_error(api.post(f"{CAMPAIGNS}/{campaign_id}/duplicate", {}, **{KEY: "k"}), 422,
                 "IDEMPOTENCY_KEY_REUSED")  # fmt: skip
    assert Campaign.objects.filter(workspace=workspace).count() == 1


def test_a_replayed_schedule_schedules_once_with_one_set_of_deliveries(api, connected, tomorrow):
    campaign_id = api.post(CAMPAIGNS, campaign_body()).json()["id"]
    payload = {"scheduled_at": tomorrow.isoformat(), "rrule": "FREQ=DAILY;COUNT=3"}
    url = f"{CAMPAIGNS}/{campaign_id}/schedule"
    first = api.post(url, payload, **{KEY: "schedule-1"})
    assert first.status_code == 200, first.content
    deliveries = sorted(
        Delivery.objects.filter(campaign_id=campaign_id).values_list("pk", "run_at")
    )
    assert deliveries
    audits = AuditLog.objects.filter(action__icontains="schedule").count()

    again = api.post(url, payload, **{KEY: "schedule-1"})
    assert again.status_code == 200 and replayed(again)
    assert again.content == first.content
    assert (
        sorted(Delivery.objects.filter(campaign_id=campaign_id).values_list("pk", "run_at"))
        == deliveries
    )
    assert AuditLog.objects.filter(action__icontains="schedule").count() == audits
    # Without the key, the same request is a second schedule: refused by the state machine.
    assert_error(api.post(url, payload), 409, "INVALID_TRANSITION")


def test_a_replayed_event_batch_is_counted_once(app, workspace):
    batch = {"events": [event("e1"), event("e2", "clicked")]}
    first = app.post("/api/v1/events", batch, format="json", **{KEY: "batch-1"})
    assert first.status_code == 202, first.content
    assert first.json()["accepted"] == 2
    rollups = sorted(
        EventRollup.objects.filter(workspace=workspace).values_list("event_type", "count")
    )

    again = app.post("/api/v1/events", batch, format="json", **{KEY: "batch-1"})
    assert again.status_code == 202 and replayed(again)
    assert again.json() == first.json()  # the first answer: accepted 2, not duplicates 2
    assert AnalyticsEvent.objects.filter(workspace=workspace).count() == 2
    assert (
        sorted(EventRollup.objects.filter(workspace=workspace).values_list("event_type", "count"))
        == rollups
    )
    record = IdempotencyRecord.objects.get()
    assert record.workspace is None and record.caller.startswith("keyprincipal:")


def test_an_error_of_the_view_is_recorded_and_what_it_wrote_is_not(api, workspace, tomorrow):
    """Stripe's rule: the answer of an executed request is its answer, errors included; the
    retry gets it again even when the state has changed since. Nothing the failed request
    wrote survives."""
    campaign_id = api.post(CAMPAIGNS, campaign_body()).json()["id"]
    url = f"{CAMPAIGNS}/{campaign_id}/schedule"
    payload = {"scheduled_at": tomorrow.isoformat()}
    assert_error(api.post(url, payload, **{KEY: "s"}), 409, "FIREBASE_NOT_CONNECTED")
    assert IdempotencyRecord.objects.get().status_code == 409
    assert Campaign.objects.get(pk=campaign_id).status == CampaignStatus.DRAFT

    from apps.integrations.firebase.testing import make_firebase_config

    make_firebase_config(workspace)
    again = api.post(url, payload, **{KEY: "s"})
    assert_error(again, 409, "FIREBASE_NOT_CONNECTED")
    assert replayed(again)
    assert not Delivery.objects.filter(campaign_id=campaign_id).exists()
    # A new key is a new request: it executes.
    assert api.post(url, payload, **{KEY: "s2"}).status_code == 200
    assert Delivery.objects.filter(campaign_id=campaign_id).exists()


def test_what_is_refused_before_the_view_runs_is_not_recorded(
    api, client_for, make_user, workspace
):
    stranger = client_for(make_user(email="stranger@example.com"), workspace)
    assert_error(stranger.post(CAMPAIGNS, campaign_body(), **{KEY: "k"}), 403,
                 "WORKSPACE_ACCESS_DENIED")  # fmt: skip
    assert_error(client_for().post(CAMPAIGNS, campaign_body(), **{KEY: "k"}), 401,
                 "NOT_AUTHENTICATED")  # fmt: skip
    assert not IdempotencyRecord.objects.exists()
    assert api.post(CAMPAIGNS, campaign_body(), **{KEY: "k"}).status_code == 201


def test_secrets_shown_once_are_never_recorded(api, workspace):
    first = api.post("/api/v1/ingest-keys", {"name": "iOS"}, **{KEY: "new-key"})
    assert first.status_code == 201 and first.json()["secret"]
    assert first.json()["secret"].encode() not in bytes(IdempotencyRecord.objects.get().body)
    again = api.post("/api/v1/ingest-keys", {"name": "iOS"}, **{KEY: "new-key"})
    assert replayed(again) and again.status_code == 201
    assert again.json() == {**first.json(), "secret": None}
    assert IngestKey.objects.filter(workspace=workspace).count() == 1

    url = f"/api/v1/workspaces/{workspace.pk}/invitations"
    invited = api.post(url, {"email": "grace@example.com"}, **{KEY: "invite"})
    assert invited.status_code == 201 and invited.json()["token"]
    assert api.post(url, {"email": "grace@example.com"}, **{KEY: "invite"}).json()["token"] is None

    for url, body in (
        ("/api/v1/api-keys", {"name": "CI", "scopes": ["campaigns:read"]}),
        (
            "/api/v1/webhooks/endpoints",
            {"url": "https://hooks.example.com/in", "event_types": ["*"]},
        ),
    ):
        first = api.post(url, body, **{KEY: url})
        assert first.status_code == 201 and first.json()["secret"], first.content
        again = api.post(url, body, **{KEY: url})
        assert replayed(again) and again.json() == {**first.json(), "secret": None}
        rotate = f"{url}/{first.json()['id']}/" + (
            "rotate" if "api-keys" in url else "rotate-secret"
        )
        rotated = api.post(rotate, {}, **{KEY: rotate})
        assert rotated.status_code == 200 and rotated.json()["secret"], rotated.content
        assert api.post(rotate, {}, **{KEY: rotate}).json()["secret"] is None
    assert not any(b"whsec_" in bytes(r.body) for r in IdempotencyRecord.objects.all())


def test_credential_exchanges_record_nothing_and_execute_each_time(client, owner):
    credentials = {"email": owner.email, "password": "Sturdy-Passw0rd!"}
    first = client.post("/api/v1/auth/token", credentials, content_type="application/json",
                        **{KEY: "sign-in"})  # fmt: skip
    second = client.post("/api/v1/auth/token", credentials, content_type="application/json",
                         **{KEY: "sign-in"})  # fmt: skip
    assert first.status_code == second.status_code == 200
    assert not replayed(second)
    assert first.json()["refresh"] != second.json()["refresh"]  # issued anew, never stored
    body = {"email": "new@example.com", "password": "Sturdy-Passw0rd!"}
    assert client.post("/api/v1/auth/register", body, content_type="application/json",
                       **{KEY: "sign-up"}).status_code == 201  # fmt: skip
    retry = client.post("/api/v1/auth/register", body, content_type="application/json",
                        **{KEY: "sign-up"})  # fmt: skip
    assert_error(retry, 400, "VALIDATION_ERROR")  # executed again: the email is taken
    assert not IdempotencyRecord.objects.exists()


# --- scope and expiry -------------------------------------------------------------------------
def test_keys_of_two_callers_or_two_workspaces_never_collide(
    api, client_for, make_user, add_member, make_workspace, owner, workspace
):
    colleague = make_user(email="colleague@example.com")
    add_member(workspace, colleague, "member")
    other_workspace = make_workspace(owner=owner, name="Other")
    clients = [api, client_for(colleague, workspace), client_for(owner, other_workspace)]
    for client in clients:
        response = client.post(CAMPAIGNS, campaign_body(), **{KEY: "shared"})
        assert response.status_code == 201 and not replayed(response)
    # ...and another caller's body under the same key is not a reuse of theirs.
    response = client_for(colleague, workspace).post(CAMPAIGNS, campaign_body(), **{KEY: "x"})
    assert response.status_code == 201
    assert Campaign.objects.filter(workspace=workspace).count() == 3
    assert Campaign.objects.filter(workspace=other_workspace).count() == 1
    assert IdempotencyRecord.objects.filter(key="shared").count() == 3
    for client in clients:
        assert replayed(client.post(CAMPAIGNS, campaign_body(), **{KEY: "shared"}))


def test_an_expired_key_executes_anew(api, workspace, settings):
    assert api.post(CAMPAIGNS, campaign_body(), **{KEY: "old"}).status_code == 201
    record = IdempotencyRecord.objects.get()
    lifetime = record.expires_at - record.created_at
    assert abs(lifetime - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)) < timedelta(
        1 / 86400
    )
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    again = api.post(CAMPAIGNS, campaign_body(name="Other"), **{KEY: "old"})
    assert again.status_code == 201 and not replayed(again)  # not even a 422: the key is new
    assert Campaign.objects.filter(workspace=workspace).count() == 2
    assert IdempotencyRecord.objects.get().pk != record.pk


def test_the_sweep_deletes_exactly_the_expired_records(api, workspace):
    for index in range(5):
        assert api.post(CAMPAIGNS, campaign_body(), **{KEY: f"k{index}"}).status_code == 201
    now = timezone.now()
    IdempotencyRecord.objects.filter(key__in=["k0", "k1", "k2"]).update(expires_at=now)
    IdempotencyRecord.objects.filter(key="k3").update(expires_at=now + timedelta(seconds=1))
    assert idempotency.sweep(now=now, limit=2) == 2  # bounded
    assert idempotency.sweep(now=now, limit=2) == 1
    assert idempotency.sweep(now=now) == 0
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k3", "k4"]

    IdempotencyRecord.objects.filter(key="k3").update(expires_at=now - timedelta(hours=1))
    call_command("sweep_idempotency_keys")
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k4"]


def test_the_dispatcher_sweeps_in_its_housekeeping(api, workspace):
    from apps.notifications import dispatcher

    assert api.post(CAMPAIGNS, campaign_body(), **{KEY: "gone"}).status_code == 201
    assert api.post(CAMPAIGNS, campaign_body(), **{KEY: "kept"}).status_code == 201
    IdempotencyRecord.objects.filter(key="gone").update(expires_at=timezone.now())
    due = {name: 0.0 for name in ("reap", "plan", "rollups", "devices", "beat")}
    dispatcher._now_and_then(due, "test-dispatcher")
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["kept"]


def test_other_methods_ignore_the_header(api, workspace):
    campaign_id = api.post(CAMPAIGNS, campaign_body()).json()["id"]
    for name in ("A", "B"):
        response = api.patch(f"{CAMPAIGNS}/{campaign_id}", {"name": name}, **{KEY: "patch"})
        assert response.status_code == 200 and not replayed(response)
    assert Campaign.objects.get(pk=campaign_id).name == "B"
    assert not IdempotencyRecord.objects.exists()


def test_the_caller_is_the_user_else_the_credential(owner, ingest_key):
    """A signed-in user is `user:<id>`; otherwise the credential DRF put in request.auth, as
    `<kind>:<id>` — a model instance by its pk (API keys: request.user is then a principal,
    not a User), the ingest key's principal by its key_id; nobody is None."""
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser

    from apps.analytics.services import principal_for_secret

    def request(user, auth=None):
        return SimpleNamespace(user=user, auth=auth)

    principal = SimpleNamespace(is_authenticated=True)  # what an API key's request.user is
    assert idempotency.caller_of(request(owner, "a-jwt")) == f"user:{owner.pk}"
    assert idempotency.caller_of(request(principal, ingest_key.key)) == (
        f"ingestkey:{ingest_key.key.pk}"
    )
    key_principal = principal_for_secret(ingest_key.secret)
    assert idempotency.caller_of(request(AnonymousUser(), key_principal)) == (
        f"keyprincipal:{key_principal.key_id}"
    )
    assert idempotency.caller_of(request(AnonymousUser())) is None
