"""Reads shared by the API and services of the `ai` app."""

from django.db.models import Q, QuerySet

from apps.ai.models import Template


def search_templates(queryset: QuerySet[Template], text: str) -> QuerySet[Template]:
    """Case-insensitive match on name, title or subtitle."""
    text = text.strip()
    if not text:
        return queryset
    return queryset.filter(
        Q(name__icontains=text) | Q(title__icontains=text) | Q(subtitle__icontains=text)
    )


def with_tag(queryset: QuerySet[Template], tag: str) -> QuerySet[Template]:
    """Templates carrying `tag` exactly.

    Tags are stored normalised (lower-case, no quotes), so the quoted tag can only match a
    whole element of the JSON list; this works on SQLite, where JSON `contains` does not.
    """
    tag = " ".join(tag.split()).lower()
    if not tag or '"' in tag or "\\" in tag:
        return queryset.none()
    return queryset.filter(tags__icontains=f'"{tag}"')
