"""AI translation drafts: through the configured provider (the fake OpenAI server over real
HTTP), validated and recorded like generated copy; offline, nothing is translated."""

import json

import pytest

from apps.ai.models import AIGeneration
from apps.common.models import AuditLog

pytestmark = pytest.mark.django_db

URL = "/api/v1/ai/translate"
SOURCE = {"title": "Good morning", "subtitle": "Coffee's on us today", "language": "de"}
GERMAN = {"title": "Guten Morgen", "subtitle": "Der Kaffee geht heute auf uns"}


def test_offline_says_it_did_not_translate(api, offline_ai):
    response = api.post(URL, SOURCE, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["subtitle"]) == (SOURCE["title"], SOURCE["subtitle"])
    assert body["translated"] is False
    assert "Not translated" in body["notice"]
    generation = AIGeneration.objects.get(pk=body["id"])
    assert (generation.task, generation.language, generation.provider) == (
        "translate", "de", "offline"
    )  # fmt: skip
    assert AuditLog.objects.filter(action="ai.translation.succeeded").exists()


def test_a_provider_translates(api, fake_ai):
    fake_ai.inject({"kind": "content", "content": json.dumps({"variants": [GERMAN]})})
    response = api.post(URL, {**SOURCE, "language": "de_de"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: body[k] for k in ("title", "subtitle")} == GERMAN
    assert (body["translated"], body["language"], body["notice"]) == (True, "de-DE", None)
    (request,) = fake_ai.requests()
    system, user = request["body"]["messages"]
    assert "'de-DE'" in system["content"]
    assert json.loads(user["content"])["source"] == {
        "title": SOURCE["title"], "subtitle": SOURCE["subtitle"]
    }  # fmt: skip


def test_an_unusable_reply_is_repaired_or_a_502(api, fake_ai):
    fake_ai.inject(
        {"kind": "content", "content": json.dumps({"variants": [{"title": "<b>Hallo</b>",
                                                                  "subtitle": "x"}]})},
        {"kind": "content", "content": json.dumps({"variants": [GERMAN]})},
    )  # fmt: skip
    repaired = api.post(URL, SOURCE, format="json")
    assert repaired.status_code == 200, repaired.content
    assert AIGeneration.objects.get(pk=repaired.json()["id"]).repaired
    fake_ai.inject(*[{"kind": "malformed_json"}] * 2)
    failed = api.post(URL, SOURCE, format="json")
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "AI_PROVIDER_ERROR"


@pytest.mark.parametrize(
    "field,value",
    [
        ("language", "not a language"),
        ("title", "t" * 201),
        ("subtitle", ""),
        ("language", None),
        ("title", "<b>Hi</b>"),
        ("subtitle", "**bold** news"),
        ("title", "a\x07b"),
    ],
)
def test_bad_input_is_a_400(api, offline_ai, field, value):
    response = api.post(URL, {**SOURCE, field: value}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == [field]
