"""The device registry through its HTTP API: upserts, bad input, erasure, languages."""

import pytest

from apps.devices import topics
from apps.devices.models import AudienceProfile, Device, DeviceStatus, TopicAudience
from apps.devices.services import registry
from apps.workspaces import services as workspaces

pytestmark = pytest.mark.django_db


def token(n: int) -> str:
    return f"{n:08d}:APA91b" + "x" * 120


def device(n: int = 1, **fields) -> dict:
    return {"token": token(n), "time_zone": "Europe/Paris", "language": "fr-FR",
            "platform": "android", **fields}  # fmt: skip


def test_register_creates_then_updates(app, workspace):
    first = app.post("/api/v1/devices", device(topics=["news"]), format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["created"] is True
    assert body["token_prefix"] == token(1)[:8]
    assert token(1) not in first.content.decode()
    stored = Device.objects.get()
    bucket = topics.bucket_of(stored.token_digest)
    # The workspace writes only English: a French device gets the default language.
    assert body["topics"] == sorted(
        ["news", "pushpilot-tz-Europe%2FParis", "pushpilot-lang-en", f"pushpilot-bucket-{bucket}"]
    )
    assert stored.topics == body["topics"]
    assert stored.needs_sync is True
    assert token(1) not in stored.encrypted_token  # encrypted at rest

    again = app.post(
        "/api/v1/devices", device(time_zone="America/Argentina/Buenos_Aires"), format="json"
    )
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert Device.objects.count() == 1
    assert "pushpilot-tz-America%2FArgentina%2FBuenos_Aires" in Device.objects.get().topics
    assert "news" not in Device.objects.get().topics  # the topics list replaces the old one


@pytest.mark.parametrize(
    "field,value",
    [
        ("token", "short"),
        ("token", "has spaces in it, which no token has"),
        ("token", None),
        ("time_zone", "Mars/Olympus_Mons"),
        ("time_zone", "/etc/passwd"),
        ("language", "english please"),
        ("language", "x-private"),
        ("language", 42),
        ("platform", "blackberry"),
        ("app_version", "v" * 65),
        ("topics", ["ok", "not ok"]),
        ("topics", [f"t{i}" for i in range(101)]),
        ("topics", ["pushpilot-lang-de"]),
        ("topics", "news"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(app, field, value):
    response = app.post("/api/v1/devices", device(**{field: value}), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == [field]
    assert not Device.objects.exists()


def test_batch_keeps_the_valid_part(app):
    items = [device(n) for n in range(5)]
    items[1]["time_zone"] = "Nowhere/Special"
    items[3] = "not an object"
    items.append(device(0, platform="ios"))  # the same token again: the last one wins
    response = app.post("/api/v1/devices/batch", {"devices": items}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["accepted"], body["created"], body["rejected"]) == (4, 3, 2)
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert list(body["errors"][0]["errors"]) == ["time_zone"]
    assert Device.objects.count() == 3
    assert Device.objects.get(token_prefix=token(0)[:8]).platform == "ios"


@pytest.mark.parametrize("body", [{}, {"devices": []}, {"devices": "x"}, [],
                                  {"devices": [device(n) for n in range(1001)]}])  # fmt: skip
def test_batch_shape_errors(app, body):
    response = app.post("/api/v1/devices/batch", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["devices"]


def test_languages_are_normalized_and_mapped(app, workspace, owner):
    workspaces.update_workspace(
        workspace=workspace,
        actor=owner,
        languages=["en", "pt-BR", "zh-Hant"],
        default_language="en",
    )
    cases = {"pt_br": "pt-BR", "PT-pt": "pt-BR", "zh-hant-tw": "zh-Hant", "de": "en"}
    for n, (tag, topic_tag) in enumerate(cases.items()):
        response = app.post("/api/v1/devices", device(n, language=tag), format="json")
        assert response.status_code == 201, response.content
        assert topics.language_topic(topic_tag) in response.json()["topics"]


def test_adding_a_language_moves_its_speakers(
    app, workspace, owner, django_capture_on_commit_callbacks
):
    for n, language in enumerate(["de-DE", "de-AT", "fr-FR"]):
        app.post("/api/v1/devices", device(n, language=language), format="json")
    with django_capture_on_commit_callbacks(execute=True):
        workspaces.update_workspace(workspace=workspace, actor=owner, languages=["en", "de"])
    by_language = {d.language: d.topics for d in Device.objects.all()}
    assert "pushpilot-lang-de" in by_language["de-DE"]
    assert "pushpilot-lang-de" in by_language["de-AT"]
    assert "pushpilot-lang-en" in by_language["fr-FR"]
    counts = dict(
        TopicAudience.objects.filter(topic__startswith="pushpilot-lang-").values_list(
            "topic", "devices"
        )
    )
    assert counts == {"pushpilot-lang-en": 1, "pushpilot-lang-de": 2}


def test_default_language_must_stay_a_language(api, workspace):
    response = api.patch(
        f"/api/v1/workspaces/{workspace.pk}", {"languages": ["de", "fr"]}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["languages"]
    response = api.patch(
        f"/api/v1/workspaces/{workspace.pk}", {"default_language": "de_at"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["languages"] == ["en", "de-AT"]
    assert response.json()["default_language"] == "de-AT"


def test_unregister_removes_the_device(app, app_client, make_key, make_workspace):
    app.post("/api/v1/devices", device(1), format="json")
    other = app_client(make_key(make_workspace(name="Other")).secret)
    assert other.delete(f"/api/v1/devices/{token(1)}").status_code == 404  # not theirs
    assert app.delete(f"/api/v1/devices/{token(2)}").status_code == 404
    assert app.delete(f"/api/v1/devices/{token(1)}").status_code == 204
    # Never subscribed (no Firebase connection yet): nothing to undo at FCM, erased at once.
    assert not Device.objects.exists()
    assert not TopicAudience.objects.filter(devices__gt=0).exists()


def test_unregister_waits_for_the_unsubscriptions(app, workspace):
    app.post("/api/v1/devices", device(1), format="json")
    Device.objects.update(subscribed=Device.objects.get().topics, needs_sync=False)
    assert app.delete(f"/api/v1/devices/{token(1)}").status_code == 204
    removed = Device.objects.get()
    assert (removed.status, removed.topics, removed.needs_sync) == (DeviceStatus.REMOVED, [], True)
    assert app.delete(f"/api/v1/devices/{token(1)}").status_code == 404  # already leaving
    assert app.post("/api/v1/devices", device(1), format="json").status_code == 200  # back


def test_deleting_the_workspace_erases_its_devices(
    app, workspace, owner, django_capture_on_commit_callbacks
):
    app.post("/api/v1/devices/batch", {"devices": [device(n) for n in range(3)]}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        workspaces.delete_workspace(workspace=workspace, actor=owner)
    assert app.post("/api/v1/devices", device(9), format="json").status_code in (401, 404)
    assert not Device.objects.exists()
    assert not AudienceProfile.objects.exists()
    assert not TopicAudience.objects.exists()


def test_app_endpoints_need_the_ingest_key(client, api):
    assert (
        client.post("/api/v1/devices", device(), content_type="application/json").status_code == 401
    )
    # A JWT is not an ingest key.
    assert api.post("/api/v1/devices", device(), format="json").status_code == 401


def test_the_team_sees_prefixes_only(app, api):
    app.post("/api/v1/devices", device(1, platform="ios"), format="json")
    app.post("/api/v1/devices", device(2), format="json")
    listed = api.get("/api/v1/audience/devices?platform=ios")
    assert listed.status_code == 200, listed.content
    rows = listed.json()["results"]
    assert [row["token_prefix"] for row in rows] == [token(1)[:8]]
    assert rows[0]["subscriptions"] == "pending"
    assert token(1) not in listed.content.decode()
    assert api.get("/api/v1/audience/devices?platform=nokia").status_code == 400


def test_registration_counts_follow_moves(app, workspace):
    app.post("/api/v1/devices", device(1, topics=["a"]), format="json")
    app.post("/api/v1/devices", device(2, topics=["a", "b"], platform="web"), format="json")
    app.post("/api/v1/devices", device(1, topics=["b"]), format="json")  # moves a -> b
    counts = {
        (t, p): n for t, p, n in TopicAudience.objects.values_list("topic", "platform", "devices")
    }
    assert counts[("a", "android")] == 0
    assert counts[("a", "web")] == 1
    assert counts[("b", "android")] == 1
    assert counts[("b", "web")] == 1
    assert sum(AudienceProfile.objects.values_list("devices", flat=True)) == 2


def test_max_devices_matches_the_docs():
    assert registry.MAX_DEVICES_PER_REQUEST == 1000


def test_the_most_and_longest_topics_fit(app):
    names = [f"{n:03d}" + "t" * 897 for n in range(registry.MAX_APP_TOPICS)]
    response = app.post("/api/v1/devices", device(topics=names), format="json")
    assert response.status_code == 201, response.content
    assert len(Device.objects.get().topics) == registry.MAX_APP_TOPICS + 3


@pytest.mark.parametrize("name", ["time_zone", "language"])
def test_a_nul_in_a_text_filter_is_a_400_naming_it(api, name):
    response = api.get(f"/api/v1/audience/devices?{name}=Europe%00Paris")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert name in response.json()["error"]["details"]
