"""POST /ai/generate and GET /ai/generations over the real API stack: validation, the
offline default, the throttle, 502s that keep their record, tenancy."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from apps.ai.api import AIGenerateThrottle
from apps.ai.models import AIGeneration, GenerationStatus, Template, TemplateSource, Tone
from apps.ai.tests.conftest import FAKE_API_KEY

GENERATE = "/api/v1/ai/generate"
GENERATIONS = "/api/v1/ai/generations"

pytestmark = pytest.mark.django_db

# POST /ai/generate runs outside the request transaction (see api.GenerateView) so that a
# failed call keeps its AIGeneration row. Inside a test case's transaction it falls back to
# a savepoint, which an error rolls back; the tests that check that a failed row survives
# therefore run in real transactions, as production does.
survives_errors = pytest.mark.django_db(transaction=True)


def test_urls_are_where_the_contract_says():
    assert reverse("ai-generate") == GENERATE
    assert reverse("ai-generation-list") == GENERATIONS
    assert reverse("template-list") == "/api/v1/templates"


# --- the offline default ----------------------------------------------------------------------
def test_generate_offline(api, offline_ai, owner, workspace):
    response = api.post(
        GENERATE, {"prompt": "Our spring sale starts Friday", "tone": "celebratory", "n": 3}
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["provider"] == "offline"
    assert body["model"] == "pushpilot-offline-1"
    assert "offline" in body["notice"].lower()
    assert len(body["variants"]) == 3
    for variant in body["variants"]:
        assert set(variant) == {"title", "subtitle"}
        assert len(variant["title"]) <= 65 and len(variant["subtitle"]) <= 240
        assert "spring sale" in (variant["title"] + variant["subtitle"]).lower()
    generation = AIGeneration.objects.get(pk=body["id"])
    assert generation.workspace == workspace and generation.user == owner
    assert generation.status == GenerationStatus.SUCCEEDED
    assert generation.variants == body["variants"]


def test_trailing_slash_and_limits(api, offline_ai):
    response = api.post(
        GENERATE + "/",
        {"prompt": "Weekly digest is ready", "tone": "informative", "max_title": 20,
         "max_subtitle": 40, "language": "en"},
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    (variant,) = response.json()["variants"]
    assert len(variant["title"]) <= 20 and len(variant["subtitle"]) <= 40


def test_no_configuration_means_the_offline_provider():
    """`make run` with an empty environment: settings pick the offline provider."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "DJANGO_"))}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    script = (
        "import django; django.setup();"
        "from django.conf import settings;"
        "from apps.ai.providers import get_provider;"
        "print(settings.AI_PROVIDER, get_provider().name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["offline", "offline"]


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "", "tone": "friendly"}, "prompt"),
        ({"prompt": "   ", "tone": "friendly"}, "prompt"),
        ({"tone": "friendly"}, "prompt"),
        ({"prompt": "x" * 2001, "tone": "friendly"}, "prompt"),
        ({"prompt": "Sale", "tone": "sarcastic"}, "tone"),
        ({"prompt": "Sale"}, "tone"),
        ({"prompt": "Sale", "tone": "friendly", "n": 0}, "n"),
        ({"prompt": "Sale", "tone": "friendly", "n": 6}, "n"),
        ({"prompt": "Sale", "tone": "friendly", "max_title": 500}, "max_title"),
        ({"prompt": "Sale", "tone": "friendly", "max_subtitle": 10}, "max_subtitle"),
        ({"prompt": "Sale", "tone": "friendly", "language": "klingon!"}, "language"),
    ],
)
def test_bad_input_is_a_400(api, offline_ai, body, field):
    response = api.post(GENERATE, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert not AIGeneration.objects.exists()


def test_a_prompt_at_the_documented_limit_is_accepted(api, offline_ai):
    response = api.post(GENERATE, {"prompt": "Big news. " * 200, "tone": "friendly"})
    assert response.status_code == 200


def test_workspace_header_is_required(client_for, owner, offline_ai):
    response = client_for(owner).post(GENERATE, {"prompt": "Sale", "tone": "friendly"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WORKSPACE_REQUIRED"


def test_anonymous_is_a_401(client, offline_ai):
    response = client.post(GENERATE, {"prompt": "Sale", "tone": "friendly"})
    assert response.status_code == 401


# --- throttle ---------------------------------------------------------------------------------
def test_the_ai_throttle(api, member_api, offline_ai):
    limit, period = AIGenerateThrottle().parse_rate(AIGenerateThrottle().get_rate())
    assert (limit, period) == (60, 60)
    body = {"prompt": "Flash sale tonight", "tone": "urgent"}

    for _ in range(limit):
        assert api.post(GENERATE, body).status_code == 200
    response = api.post(GENERATE, body)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "THROTTLED"
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"]["details"]["retry_after"] == int(response["Retry-After"])
    assert AIGeneration.objects.count() == limit
    # Per user: a colleague in the same workspace is not throttled by the first user's calls,
    # and other routes are not affected.
    assert member_api.post(GENERATE, body).status_code == 200
    assert api.get(GENERATIONS).status_code == 200


# --- provider failures through the API --------------------------------------------------------
@survives_errors
def test_a_provider_failure_is_a_502_and_its_record_survives(api, fake_ai, workspace):
    fake_ai.inject({"kind": "status", "status": 503, "times": 3})
    response = api.post(GENERATE, {"prompt": "Sale", "tone": "friendly"})

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "AI_PROVIDER_ERROR"
    assert error["details"]["reason"] == "server_error"
    assert error["details"]["attempts"] == 3
    generation = AIGeneration.objects.get(pk=error["details"]["generation_id"])
    assert generation.status == GenerationStatus.FAILED
    assert generation.error_code == "server_error"
    assert FAKE_API_KEY not in response.content.decode()

    listed = api.get(GENERATIONS, {"status": "failed"}).json()
    assert [row["id"] for row in listed["results"]] == [str(generation.pk)]


@survives_errors
def test_a_rejected_key_is_a_502_without_the_key(api, fake_ai, settings):
    settings.AI_API_KEY = "sk-proj-DoNotLeakMe-42"
    response = api.post(GENERATE, {"prompt": "Sale", "tone": "friendly"})

    assert response.status_code == 502
    assert response.json()["error"]["details"]["reason"] == "authentication_failed"
    assert "DoNotLeakMe" not in response.content.decode()


def test_generate_through_the_fake(api, fake_ai):
    response = api.post(GENERATE, {"prompt": "New playlist", "tone": "playful", "n": 2})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["provider"], body["model"], body["notice"]) == ("openai", "fake-gpt", None)
    assert body["usage"]["total_tokens"] > 0
    assert len(body["variants"]) == 2


# --- generations list, save as template, tenancy ----------------------------------------------
def test_generations_are_listed_newest_first_and_scoped(
    api, offline_ai, client_for, make_workspace, owner
):
    other = client_for(owner, make_workspace(owner=owner, name="Other"))
    first = api.post(GENERATE, {"prompt": "First", "tone": "friendly"}).json()["id"]
    second = api.post(GENERATE, {"prompt": "Second", "tone": "friendly"}).json()["id"]
    foreign = other.post(GENERATE, {"prompt": "Elsewhere", "tone": "friendly"}).json()["id"]

    page = api.get(GENERATIONS).json()
    assert page["count"] == 2
    assert [row["id"] for row in page["results"]] == [second, first]
    assert page["results"][0]["provider"] == "offline"
    assert api.get(f"{GENERATIONS}/{first}").json()["prompt"] == "First"
    assert api.get(f"{GENERATIONS}/{foreign}").status_code == 404


def test_save_a_variant_as_a_template(api, offline_ai, workspace, owner):
    generated = api.post(
        GENERATE, {"prompt": "Weekend brunch specials", "tone": "friendly", "n": 3}
    ).json()

    response = api.post(
        f"{GENERATIONS}/{generated['id']}/save-template",
        {"variant_index": 2, "name": "Brunch", "tags": ["Food", "weekend"],
         "data": {"screen": "menu"}},
    )  # fmt: skip

    assert response.status_code == 201, response.json()
    template = response.json()
    assert template["title"] == generated["variants"][2]["title"]
    assert template["subtitle"] == generated["variants"][2]["subtitle"]
    assert template["source"] == TemplateSource.AI
    assert template["generation"] == generated["id"]
    assert template["tags"] == ["food", "weekend"]
    assert Template.objects.get(pk=template["id"]).workspace == workspace


def test_save_template_rejects_a_bad_index_and_foreign_generations(
    api, offline_ai, client_for, make_workspace, owner
):
    generated = api.post(GENERATE, {"prompt": "Sale", "tone": "friendly", "n": 1}).json()
    url = f"{GENERATIONS}/{generated['id']}/save-template"

    response = api.post(url, {"variant_index": 1, "name": "Nope"})
    assert response.status_code == 400
    assert "variant_index" in response.json()["error"]["details"]

    other = client_for(owner, make_workspace(owner=owner, name="Other"))
    assert other.post(url, {"variant_index": 0, "name": "Stolen"}).status_code == 404
    assert not Template.objects.filter(name__in=["Nope", "Stolen"]).exists()


def test_a_failed_generation_cannot_be_saved(api, workspace, owner):
    failed = AIGeneration.objects.create(
        workspace=workspace, user=owner, prompt="x", tone="friendly", max_title=65,
        max_subtitle=240, provider="openai", status=GenerationStatus.FAILED,
        error_code="timeout",
    )  # fmt: skip
    response = api.post(f"{GENERATIONS}/{failed.pk}/save-template", {"name": "From failure"})
    assert response.status_code == 409


def test_openapi_documents_tones_and_the_502(api):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/ai/generate"]["post"]
    assert "502" in operation["responses"]
    request_schema = schema["components"]["schemas"]["GenerateRequest"]
    tone_doc = request_schema["properties"]["tone"]["description"]
    assert all(tone in tone_doc for tone in Tone.values)
    assert request_schema["properties"]["prompt"]["maxLength"] == 2000
    assert "/api/v1/ai/generations/{generation_id}/save-template" in schema["paths"]
