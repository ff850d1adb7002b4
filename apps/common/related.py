"""Rows with a few columns of the rows their foreign keys point to."""

from django.db.models import F, QuerySet


def with_related_columns(queryset: QuerySet, **columns: str) -> QuerySet:
    """`queryset` whose rows also carry, as attribute `name`, the column at `path` of the row
    a foreign key points to (`actor_email="actor__email"`; None where there is none): one
    join, and the rows stay rows of their own model.

    For list endpoints that show one or two columns of a related row: `select_related()`
    fetches and builds the whole related row (a user's password hash and flags, an API key's
    17 columns) for every row of the page, and even restricted by `only()` it builds one
    deferred instance per related row — ~0.8 ms of CPU for a page of 50 audit entries, twice
    what the columns alone cost."""
    return queryset.annotate(**{name: F(path) for name, path in columns.items()})
