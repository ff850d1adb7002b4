"""Rows with a few columns of the rows their foreign keys point to."""

from django.db.models import QuerySet


def with_related_columns(queryset: QuerySet, *related_columns: str) -> QuerySet:
    """`queryset` with every column of its own model, joined (select_related) to the rows
    `related_columns` name (`"actor__email"`) and fetching only those columns of them.

    For list endpoints that show one or two columns of a related row: `select_related()`
    alone fetches and builds the whole related row (a user's password hash and flags, an API
    key's 17 columns) for every row of the page. The related instances come back deferred:
    reading another of their columns would cost a query each, so name every column the
    reader needs."""
    own = [field.name for field in queryset.model._meta.concrete_fields]
    relations = {column.split("__", 1)[0] for column in related_columns}
    return queryset.select_related(*sorted(relations)).only(*own, *related_columns)
