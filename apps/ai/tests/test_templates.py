"""Templates: CRUD, search and filters, soft delete, audit, tenancy, and the seeded examples."""

import pytest

from apps.ai import content, services
from apps.ai.models import Template, TemplateSource
from apps.ai.services import templates
from apps.common.models import AuditLog

TEMPLATES = "/api/v1/templates"

pytestmark = pytest.mark.django_db

SALE = {
    "name": "Spring promo",
    "title": "Flash sale: 2 hours only",
    "subtitle": "Everything 20% off until 8 pm.",
    "image_url": "https://cdn.example.com/sale.png",
    "data": {"screen": "sale", "campaign": "spring"},
    "tags": ["Promo", "sale", "promo"],
}


def test_create_read_update_delete(api, workspace, owner):
    created = api.post(TEMPLATES, SALE)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["tags"] == ["promo", "sale"]
    assert body["source"] == TemplateSource.MANUAL
    assert body["created_by"] == str(owner.pk)
    url = f"{TEMPLATES}/{body['id']}"

    assert api.get(url).json()["title"] == SALE["title"]

    patched = api.patch(url, {"title": "Flash sale: last hour", "tags": ["urgent"]})
    assert patched.status_code == 200, patched.json()
    assert patched.json()["title"] == "Flash sale: last hour"
    assert patched.json()["tags"] == ["urgent"]
    assert patched.json()["subtitle"] == SALE["subtitle"]

    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    row = Template.all_objects.get(pk=body["id"])
    assert row.is_deleted and row.deleted_at is not None

    actions = list(
        AuditLog.objects.filter(target_id=body["id"])
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert actions == ["template.created", "template.updated", "template.deleted"]


def test_members_manage_templates_too(member_api):
    assert member_api.post(TEMPLATES, SALE).status_code == 201
    assert member_api.get(TEMPLATES).json()["count"] == 1


def test_names_are_unique_among_live_templates(api):
    first = api.post(TEMPLATES, SALE).json()
    duplicate = api.post(TEMPLATES, {**SALE, "title": "Another"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "CONFLICT"

    other = api.post(TEMPLATES, {**SALE, "name": "Other"}).json()
    renamed = api.patch(f"{TEMPLATES}/{other['id']}", {"name": SALE["name"]})
    assert renamed.status_code == 409

    api.delete(f"{TEMPLATES}/{first['id']}")
    assert api.post(TEMPLATES, SALE).status_code == 201  # a deleted name is free again


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"title": ""}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"subtitle": "x" * 501}, "subtitle"),
        ({"image_url": "not a url"}, "image_url"),
        ({"data": {"from": "me"}}, "data"),
        ({"data": {"google.c.a": "1"}}, "data"),
        ({"data": {"nested": {"a": "b"}}}, "data"),
        ({"data": {"big": "x" * 5000}}, "data"),
        ({"data": {"a\u0000b": "1"}}, "data"),  # PostgreSQL cannot store it: not a 500
        ({"tags": ["no/slashes"]}, "tags"),
        ({"tags": "promo"}, "tags"),
    ],
)
def test_bad_templates_are_a_400(api, changes, field):
    response = api.post(TEMPLATES, {**SALE, **changes})
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Template.objects.exists()


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("screen", True),
        ("collapse_key", True),  # reserved in FCM's message, not in its data
        ("notification", True),
        ("from", False),
        ("Message_Type", False),
        ("googleapp", False),  # FCM reserves the prefix "google", dot or not
        ("gcm.n.e", False),
    ],
)
def test_template_data_keys_follow_fcms_rules_as_campaigns_do(api, key, accepted):
    """One rule for data keys: a template's data is a campaign content's data."""
    response = api.post(TEMPLATES, {**SALE, "data": {key: "1"}})
    assert response.status_code == (201 if accepted else 400), response.json()
    campaign = api.post(
        "/api/v1/campaigns",
        {
            "name": "c",
            "target": {"topic": "news"},
            "contents": [{"title": "t", "data": {key: "1"}}],
        },
    )
    assert campaign.status_code == (201 if accepted else 400), campaign.json()


def test_search_and_filters(api, workspace, owner):
    services.seed_example_templates(workspace, actor=owner)
    api.post(TEMPLATES, SALE)

    def names(**query):
        page = api.get(TEMPLATES, query).json()
        return [row["name"] for row in page["results"]]

    assert names(search="FLASH") == ["Flash sale", "Spring promo"]
    assert names(search="cart") == ["Abandoned cart reminder"]
    assert names(search="waiting") == ["Abandoned cart reminder"]  # matches the subtitle
    assert names(tag="Promo") == ["Spring promo"]
    assert names(tag="sale") == ["Flash sale", "Spring promo"]
    assert names(tag="sal") == []  # whole tags only
    assert names(source="manual") == ["Spring promo"]
    assert len(names(source="example")) == len(templates.EXAMPLE_TEMPLATES)
    by_name = names(ordering="name")
    assert by_name[0] == "Abandoned cart reminder"
    assert names(ordering="-name") == by_name[::-1]
    assert api.get(TEMPLATES, {"source": "robot"}).status_code == 400


def test_pagination(api, workspace):
    for index in range(25):
        services.create_template(
            workspace=workspace, name=f"T{index:02}", title="Hello", subtitle="World"
        )
    first = api.get(TEMPLATES).json()
    assert first["count"] == 25 and len(first["results"]) == 20 and first["next"]
    assert len(api.get(TEMPLATES, {"page": 2}).json()["results"]) == 5


def test_another_workspace_cannot_see_or_touch_them(api, client_for, make_user, make_workspace):
    template = api.post(TEMPLATES, SALE).json()
    stranger = make_user()
    other = client_for(stranger, make_workspace(owner=stranger, name="Rival"))
    url = f"{TEMPLATES}/{template['id']}"

    assert other.get(TEMPLATES).json()["count"] == 0
    assert other.get(url).status_code == 404
    assert other.patch(url, {"title": "Hijacked"}).status_code == 404
    assert other.delete(url).status_code == 404
    assert Template.objects.get(pk=template["id"]).title == SALE["title"]

    outsider = client_for(stranger)
    outsider.defaults["HTTP_X_WORKSPACE_ID"] = api.defaults["HTTP_X_WORKSPACE_ID"]
    assert outsider.get(TEMPLATES).status_code == 403


# --- seeding ----------------------------------------------------------------------------------
def test_seed_example_templates(workspace, owner):
    created = services.seed_example_templates(workspace, actor=owner)

    assert len(created) == len(templates.EXAMPLE_TEMPLATES) >= 3
    assert {t.source for t in created} == {TemplateSource.EXAMPLE}
    assert AuditLog.objects.filter(action="template.created", workspace=workspace).count() == len(
        created
    )
    # Good examples: within the default limits and plain text, like generated copy must be.
    brief = content.Brief(prompt="-", tone="friendly")
    for template in created:
        outcome = content.validate_items(
            [{"title": template.title, "subtitle": template.subtitle}], brief
        )
        assert outcome.problems == [], template.name
        assert template.tags and template.data


def test_seeding_is_idempotent_and_keeps_edits(workspace):
    services.seed_example_templates(workspace)
    edited = Template.objects.get(workspace=workspace, name="Flash sale")
    services.update_template(template=edited, title="Our own flash sale")

    assert services.seed_example_templates(workspace) == []
    assert Template.objects.filter(workspace=workspace).count() == len(templates.EXAMPLE_TEMPLATES)
    assert Template.objects.get(pk=edited.pk).title == "Our own flash sale"


def test_seeding_targets_one_workspace(make_workspace):
    first, second = make_workspace(name="One"), make_workspace(name="Two")
    services.seed_example_templates(first)
    assert Template.objects.filter(workspace=second).count() == 0
