"""Audience estimates equal a direct count over the registry, for any topic or condition."""

import random

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.devices import audience, selectors, topics
from apps.devices.models import AudienceProfile, Device, DeviceStatus, TopicAudience
from apps.devices.services import registry, sync
from apps.integrations.firebase.validation import MAX_CONDITION_TOPICS
from apps.workspaces import services as workspaces

pytestmark = pytest.mark.django_db

APP_TOPICS = ["news", "sports", "deals", "Deals", "beta"]
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Etc/GMT+5"]
LANGUAGES = ["en-US", "de", "fr-CA", "ja"]
POOL = [
    *APP_TOPICS,
    *(topics.zone_topic(zone) for zone in ZONES),
    *(topics.language_topic(tag) for tag in ("en", "de", "fr")),
    *(topics.bucket_topic(n) for n in range(3)),
    "nobody-here",
]


def raw_device(rng: random.Random, n: int) -> dict:
    return {
        "token": f"{n:08d}:{rng.randrange(10**9)}" + "t" * 40,
        "time_zone": rng.choice(ZONES),
        "language": rng.choice(LANGUAGES),
        "platform": rng.choice(["android", "ios", "web"]),
        "topics": rng.sample(APP_TOPICS, rng.randrange(len(APP_TOPICS) + 1)),
    }


@pytest.fixture
def registry_with_history(workspace, owner, django_capture_on_commit_callbacks):
    """300 devices registered, then some moved, removed and retired, and a language added:
    every path that changes the counts has run."""
    workspaces.update_workspace(workspace=workspace, actor=owner, languages=["en", "fr"])
    rng = random.Random(20261201)
    items = [raw_device(rng, n) for n in range(300)]
    registry.register_batch(workspace_id=workspace.pk, payload={"devices": items})
    moved = [dict(raw_device(rng, 0), token=item["token"]) for item in rng.sample(items, 60)]
    registry.register_batch(workspace_id=workspace.pk, payload={"devices": moved})
    for item in rng.sample(items, 20):
        registry.unregister(workspace_id=workspace.pk, token=item["token"])
    retiring = Device.objects.filter(status=DeviceStatus.ACTIVE).order_by("id")[:10]
    Device.objects.filter(id__in=list(retiring.values_list("id", flat=True))).update(
        sync_claim="00000000-0000-0000-0000-000000000001"
    )
    sync._retire(
        workspace.pk,
        "00000000-0000-0000-0000-000000000001",
        {pk: "NOT_FOUND" for pk in retiring.values_list("id", flat=True)},
        timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        workspaces.update_workspace(workspace=workspace, actor=owner, languages=["en", "fr", "de"])
    return workspace


def evaluate(tree, device_topics: set) -> bool:
    kind, value = tree
    if kind == "topic":
        return value in device_topics
    if kind == "not":
        return not evaluate(value, device_topics)
    results = [evaluate(node, device_topics) for node in value]
    return all(results) if kind == "and" else any(results)


def direct_count(workspace, tree) -> dict:
    counts = {"android": 0, "ios": 0, "web": 0}
    for platform, device_topics in Device.objects.filter(
        workspace=workspace, status=DeviceStatus.ACTIVE
    ).values_list("platform", "topics"):
        counts[platform] += evaluate(tree, set(device_topics))
    return {"devices": sum(counts.values()), "by_platform": counts}


def render(tree) -> str:
    kind, value = tree
    if kind == "topic":
        return f"'{value}' in topics"
    if kind == "not":
        return f"!({render(value)})"
    joiner = " && " if kind == "and" else " || "
    return "(" + joiner.join(render(node) for node in value) + ")"


def size(tree) -> int:
    kind, value = tree
    if kind == "topic":
        return 1
    if kind == "not":
        return size(value)
    return sum(size(node) for node in value)


conditions = st.recursive(
    st.sampled_from(POOL).map(lambda name: ("topic", name)),
    lambda inner: st.one_of(
        inner.map(lambda node: ("not", node)),
        st.lists(inner, min_size=2, max_size=3).map(lambda nodes: ("and", nodes)),
        st.lists(inner, min_size=2, max_size=3).map(lambda nodes: ("or", nodes)),
    ),
    max_leaves=MAX_CONDITION_TOPICS,
).filter(lambda tree: size(tree) <= MAX_CONDITION_TOPICS)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=conditions)
def test_condition_estimates_equal_a_direct_count(registry_with_history, tree):
    condition = render(tree)
    estimate = selectors.estimate(workspace_id=registry_with_history.pk, condition=condition)
    assert {k: estimate[k] for k in ("devices", "by_platform")} == direct_count(
        registry_with_history, tree
    ), condition


def test_topic_estimates_and_the_topic_list_equal_direct_counts(registry_with_history, api):
    for name in POOL:
        estimate = selectors.estimate(workspace_id=registry_with_history.pk, topic=name)
        expected = direct_count(registry_with_history, ("topic", name))
        assert {k: estimate[k] for k in ("devices", "by_platform")} == expected, name
    listed = api.get("/api/v1/audience/topics?page_size=200").json()["results"]
    for row in listed:
        assert (
            row["devices"]
            == direct_count(registry_with_history, ("topic", row["topic"]))["devices"]
        )
        assert row["kind"] == topics.topic_kind(row["topic"])
    zones = api.get("/api/v1/audience/topics?kind=zone").json()["results"]
    assert {row["topic"] for row in zones} == {topics.zone_topic(zone) for zone in ZONES}


def test_rebuilding_the_counts_changes_nothing(registry_with_history):
    def snapshot():
        return (
            {(p, t): n for p, t, n in AudienceProfile.objects.filter(devices__gt=0)
             .values_list("platform", "topic_list", "devices")},
            {(t, p): n for t, p, n in TopicAudience.objects.filter(devices__gt=0)
             .values_list("topic", "platform", "devices")},
        )  # fmt: skip

    before = snapshot()
    audience.rebuild(registry_with_history.pk)
    assert snapshot() == before


def test_estimate_api(api, registry_with_history):
    response = api.get(
        "/api/v1/audience/estimate", {"condition": "'news' in topics && !('beta' in topics)"}
    )
    assert response.status_code == 200, response.content
    assert (
        response.json()["devices"]
        == direct_count(
            registry_with_history,
            ("and", [("topic", "news"), ("not", ("topic", "beta"))]),
        )["devices"]
    )
    for bad in ({}, {"topic": "a", "condition": "'a' in topics"}, {"topic": "no spaces"},
                {"condition": "'a' in topics &&"},
                {"condition": " || ".join(f"'t{i}' in topics" for i in range(6))}):  # fmt: skip
        response = api.get("/api/v1/audience/estimate", bad)
        assert response.status_code == 400, (bad, response.content)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_another_workspace_sees_none_of_it(
    registry_with_history, client_for, make_user, make_workspace
):
    stranger = make_user("stranger@example.com")
    theirs = make_workspace(owner=stranger, name="Theirs")
    api = client_for(stranger, theirs)
    assert api.get("/api/v1/audience/estimate", {"topic": "news"}).json()["devices"] == 0
    assert api.get("/api/v1/audience/topics").json()["results"] == []
    assert api.get("/api/v1/audience/devices").json()["results"] == []
