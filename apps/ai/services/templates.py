"""Notification templates: written by hand, saved from a generation, or the examples every
new workspace starts with."""

import re

from django.db import IntegrityError, transaction

from apps.ai.errors import DuplicateTemplateName
from apps.ai.models import AIGeneration, GenerationStatus, Template, TemplateSource
from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import Conflict, ValidationFailed
from apps.integrations.firebase import validation as fcm

TAG = re.compile(r"^[a-z0-9][a-z0-9 _\-]{0,39}$")
MAX_TAGS = 20


def normalize_tags(tags) -> list[str]:
    """Lower-case, trimmed, de-duplicated (order kept); a bad tag is a 400."""
    if tags is None:
        return []
    if not isinstance(tags, list | tuple):
        raise ValidationFailed.on("tags", "Expected a list of strings.")
    result: list[str] = []
    for tag in tags:
        value = " ".join(str(tag).split()).lower() if isinstance(tag, str) else None
        if value is None or not TAG.match(value):
            raise ValidationFailed.on(
                "tags",
                "Each tag is 1 to 40 characters: letters, digits, spaces, '-' or '_'.",
            )
        if value not in result:
            result.append(value)
    if len(result) > MAX_TAGS:
        raise ValidationFailed.on("tags", f"At most {MAX_TAGS} tags.")
    return result


def validate_data(data) -> dict[str, str]:
    """A template's data payload obeys FCM's data rules (apps.integrations.firebase)."""
    if data is None:
        return {}
    try:
        return dict(fcm.validate_data(data))
    except fcm.MessageInvalid as exc:
        raise ValidationFailed.on("data", exc.message) from None


def _save_unique(template: Template, **save_kwargs) -> None:
    # A savepoint, so that the unique-name violation leaves the caller's transaction usable.
    try:
        with transaction.atomic():
            template.save(**save_kwargs)
    except IntegrityError as exc:
        raise DuplicateTemplateName(details={"name": [DuplicateTemplateName.message]}) from exc


@transaction.atomic
def create_template(
    *,
    workspace,
    actor=None,
    name: str,
    title: str,
    subtitle: str,
    image_url: str = "",
    data: dict | None = None,
    tags: list[str] | None = None,
    source: str = TemplateSource.MANUAL,
    generation: AIGeneration | None = None,
) -> Template:
    template = Template(
        workspace=workspace,
        name=name.strip(),
        title=title.strip(),
        subtitle=subtitle.strip(),
        image_url=image_url or "",
        data=validate_data(data),
        tags=normalize_tags(tags),
        source=source,
        generation=generation,
        created_by=user_or_none(actor),
    )
    _save_unique(template)
    audit.record(
        "template.created",
        actor=actor,
        workspace=workspace,
        target=template,
        metadata={"name": template.name, "source": source},
    )
    return template


TEMPLATE_EDITABLE = ("name", "title", "subtitle", "image_url", "data", "tags")


@transaction.atomic
def update_template(*, template: Template, actor=None, **changes) -> Template:
    unknown = set(changes) - set(TEMPLATE_EDITABLE)
    if unknown:
        raise ValueError(f"Not editable: {sorted(unknown)}")
    if "data" in changes:
        changes["data"] = validate_data(changes["data"])
    if "tags" in changes:
        changes["tags"] = normalize_tags(changes["tags"])
    for key in ("name", "title", "subtitle"):
        if key in changes:
            changes[key] = changes[key].strip()
    fields = [key for key in TEMPLATE_EDITABLE if key in changes]
    if not fields:
        return template
    for key in fields:
        setattr(template, key, changes[key] if changes[key] is not None else "")
    _save_unique(template, update_fields=[*fields, "updated_at"])
    audit.record(
        "template.updated",
        actor=actor,
        workspace=template.workspace,
        target=template,
        metadata={"fields": fields},
    )
    return template


@transaction.atomic
def delete_template(*, template: Template, actor=None) -> None:
    if template.mark_deleted():
        audit.record(
            "template.deleted",
            actor=actor,
            workspace=template.workspace,
            target=template,
            metadata={"name": template.name},
        )


def save_variant_as_template(
    *,
    generation: AIGeneration,
    variant_index: int,
    name: str,
    actor=None,
    tags: list[str] | None = None,
    image_url: str = "",
    data: dict | None = None,
) -> Template:
    """Keep one generated variant (0-based `variant_index`) as a template of its workspace."""
    if generation.status != GenerationStatus.SUCCEEDED or not generation.variants:
        raise Conflict("This generation failed; it has no variants to save.")
    if not 0 <= variant_index < len(generation.variants):
        raise ValidationFailed.on(
            "variant_index", f"Must be between 0 and {len(generation.variants) - 1}."
        )
    variant = generation.variants[variant_index]
    return create_template(
        workspace=generation.workspace,
        actor=actor,
        name=name,
        title=variant["title"],
        subtitle=variant["subtitle"],
        image_url=image_url,
        data=data,
        tags=tags,
        source=TemplateSource.AI,
        generation=generation,
    )


EXAMPLE_TEMPLATES: list[dict] = [
    {
        "name": "Welcome aboard",
        "title": "Welcome to the app! 👋",
        "subtitle": "Your account is ready. Take a quick tour and set things up your way.",
        "data": {"screen": "onboarding"},
        "tags": ["onboarding", "welcome"],
    },
    {
        "name": "Flash sale",
        "title": "Flash sale: 24 hours only ⚡",
        "subtitle": "Save on our most-loved picks until midnight. Tap to shop before it ends.",
        "data": {"screen": "sale"},
        "tags": ["promotion", "sale"],
    },
    {
        "name": "Abandoned cart reminder",
        "title": "You left something behind",
        "subtitle": "The items in your cart are still waiting. Complete your order in a tap.",
        "data": {"screen": "cart"},
        "tags": ["retention", "cart"],
    },
    {
        "name": "New feature announcement",
        "title": "New: a faster way to get things done",
        "subtitle": "We just shipped an update you asked for. Open the app to try it out.",
        "data": {"screen": "whats-new"},
        "tags": ["product", "announcement"],
    },
    {
        "name": "We miss you",
        "title": "It's been a while 💙",
        "subtitle": "A lot has changed since your last visit. Come back and see what's new.",
        "data": {"screen": "home"},
        "tags": ["re-engagement"],
    },
]


@transaction.atomic
def seed_example_templates(workspace, actor=None) -> list[Template]:
    """Give a new workspace a few ready-to-use templates. Idempotent: names that already
    exist in the workspace are left alone, so calling it twice creates nothing new."""
    existing = set(Template.objects.filter(workspace=workspace).values_list("name", flat=True))
    return [
        create_template(workspace=workspace, actor=actor, source=TemplateSource.EXAMPLE, **spec)
        for spec in EXAMPLE_TEMPLATES
        if spec["name"] not in existing
    ]
