import base64
import binascii
import json
import uuid
from collections import OrderedDict
from contextlib import nullcontext

from django.db import connections
from django.db.models import F
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from apps.common import partitions
from apps.common.errors import ValidationFailed


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M`; M defaults to 20 and is clamped to 100, never refused."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class CursorPagination(pagination.BasePagination):
    """Keyset pages over an append-only collection, newest first: `?cursor=&page_size=`.

    The cursor is base64 of the boundary row's ordering key — `(view.cursor_field, id)`, id
    breaking ties between rows of the same instant (or `view.cursor_tiebreaker`, a unique
    text field, where the index holds that one instead) — and a direction. A page is "rows
    strictly after the key" in (field desc, id desc) order, so rows inserted meanwhile (newer
    ones, or ones sharing the boundary's instant) can neither shift nor repeat what follows,
    unlike an offset. No COUNT(*): with the (workspace|parent, field, id) index a page is one
    index range scan, however deep. On a table partitioned by the field, that scan goes one
    time window at a time (`_read`), so that a page plans a few partitions, not all; a view
    over few rows a span (one campaign's) says `cursor_sparse = True` (wider first window).

    Compatibility (API.md promised `?page=N` with `count`): a request that names `page` still
    gets the page-number answer (with `count`, plus a `Deprecation` header) for one
    deprecation period; anything else — no parameter, or `cursor` — gets cursor pages.
    """

    page_size = PageNumberPagination.page_size
    max_page_size = PageNumberPagination.max_page_size
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    legacy_query_param = "page"

    def paginate_queryset(self, queryset, request, view=None):
        self._configure(request, view)
        if self.legacy_query_param in request.query_params:
            self.legacy = PageNumberPagination()
            queryset = queryset.order_by(f"-{self.field}", f"-{self.tiebreaker}")
            return self.legacy.paginate_queryset(queryset, request, view)

        def read(key, backwards, lo, hi, limit):
            return list(self._shaped(queryset, key, backwards=backwards, lo=lo, hi=hi)[:limit])

        return self._page(queryset.model, queryset.db, read)

    def compiled_page(self, request, view, page, **values) -> list | None:
        """What `paginate_queryset` answers for the rows of `page` (a compiled.CompiledPage)
        with these values, its statements compiled once per connection instead of a
        queryset built and compiled each request; None for a request that names anything
        but `cursor` and `page_size` (filters, the deprecated `page`): that one takes the
        queryset. An empty page may stand for a missing parent: the view checks it then."""
        if not set(request.query_params) <= {self.cursor_query_param, self.page_size_query_param}:
            return None
        self._configure(request, view)
        key_fields = (self.field, self.tiebreaker)

        def read(key, backwards, lo, hi, limit):
            return page.rows(
                values,
                key,
                key_fields=key_fields,
                shape=(backwards, lo, hi, limit),
                page=lambda queryset, placeholders: self._shaped(
                    queryset, placeholders, backwards=backwards, lo=lo, hi=hi
                )[:limit],
            )

        return self._page(page.model, "default", read)

    def _configure(self, request, view):
        self.request = request
        self.field = getattr(view, "cursor_field", "created_at")
        self.tiebreaker = getattr(view, "cursor_tiebreaker", "id")
        self.sparse = getattr(view, "cursor_sparse", False)
        self.legacy = None

    def _page(self, model, using: str, read) -> list:
        """The page the request's cursor asks for: `read(key, backwards, lo, hi, limit)` gives
        the rows of one time window (see `_read`)."""
        self.size = self._page_size(self.request)
        raw = self.request.query_params.get(self.cursor_query_param)
        backwards, key = self.decode(raw, by_id=self.tiebreaker == "id") if raw else (False, None)
        rows = self._read(
            model,
            using,
            lambda lo, hi, limit: read(key, backwards, lo, hi, limit),
            limit=self.size + 1,
            start=key[0] if key else None,
            ascending=backwards,
        )
        more = len(rows) > self.size
        rows = rows[: self.size]
        if backwards:
            rows.reverse()
            has_previous, has_next = more, True
        else:
            has_previous, has_next = key is not None, more
        # The links' keys, not the rows: a request's objects are reference cycles (view,
        # request, response), freed by the cyclic collector only, and rows held here would
        # wait for it with them (measured: a page of 50 left ~600 objects a request to it).
        self.next_key = self._key(rows[-1]) if has_next and rows else None
        self.previous_key = self._key(rows[0]) if has_previous and rows else None
        return rows

    def _key(self, row) -> tuple:
        return getattr(row, self.field), getattr(row, self.tiebreaker)

    def _shaped(self, queryset, key, *, backwards: bool, lo, hi):
        """`queryset`'s rows after `key` (all, without one) in the walk's order, within the
        window [lo, hi) (either end None: open)."""
        queryset = queryset.order_by(f"-{self.field}", f"-{self.tiebreaker}")
        if key is not None:
            queryset = self._beyond(queryset, key, backwards=backwards)
        if lo is not None:
            queryset = queryset.filter(**{f"{self.field}__gte": partitions.Bound(lo)})
        if hi is not None:
            queryset = queryset.filter(**{f"{self.field}__lt": partitions.Bound(hi)})
        return queryset

    def _beyond(self, queryset, key, *, backwards: bool):
        """The rows strictly after the key in the walk's order: older ones, or (`backwards`)
        newer ones nearest first (ascending, flipped by the caller).

        A row comparison, `(field, id) < (value, pk)` (Django's, that of its composite
        primary keys): on PostgreSQL one condition of the composite index's range scan,
        whose selectivity the planner guesses sensibly in a generic plan too.
        (`field <= $1 AND field >= <window>` is taken for a narrow range, 0.5 %, and the
        prepared page was planned as "read the window, sort it": today's 6,600
        notifications sorted for each page, 4.2 ms instead of 0.08.) Where the backend has
        no row values (SQLite) Django writes it out as ORs, and a redundant `<=`/`>=` bound
        keeps it a range scan."""
        value, pk = key
        columns = Tuple(F(self.field), F(self.tiebreaker))
        if backwards:
            queryset = queryset.filter(TupleGreaterThan(columns, (value, pk)))
            queryset = queryset.order_by(self.field, self.tiebreaker)
        else:
            queryset = queryset.filter(TupleLessThan(columns, (value, pk)))
        if not connections[queryset.db].features.supports_tuple_lookups:
            bound = "gte" if backwards else "lte"
            queryset = queryset.filter(**{f"{self.field}__{bound}": value})
        return queryset

    def _read(self, model, using: str, read, *, limit: int, start, ascending: bool) -> list:
        """The first `limit` rows of the walk, read one time window after the other on a
        time-partitioned table (partitions.windows: each statement plans only the
        partitions of its window), in one statement elsewhere. Each window reads up to
        `limit` rows, so that a page's statements differ only by their window."""
        rows = []
        spans = partitions.windows(
            model._meta.db_table, self.field, start, descending=not ascending, sparse=self.sparse
        )
        # A page's statements are the same every time but for their values: planned once a
        # session (on PostgreSQL), their bounds literals so the plan keeps its partitions.
        preparing = getattr(connections[using], "prepared_statements", nullcontext)
        with preparing():
            for lo, hi in spans:
                rows.extend(read(lo, hi, limit)[: limit - len(rows)])
                if len(rows) == limit:
                    break
        return rows

    def get_paginated_response(self, data):
        if self.legacy is not None:
            response = self.legacy.get_paginated_response(data)
            response["Deprecation"] = "true"
            return response
        return Response(
            OrderedDict(
                [
                    ("next", self._link(self.next_key, backwards=False)),
                    ("previous", self._link(self.previous_key, backwards=True)),
                    ("results", data),
                ]
            )
        )

    def _link(self, key, *, backwards):
        if key is None:
            return None
        url = self.request.build_absolute_uri()
        url = remove_query_param(url, self.legacy_query_param)
        return replace_query_param(url, self.cursor_query_param, self.encode(*key, backwards))

    @staticmethod
    def encode(value, pk, backwards: bool) -> str:
        raw = json.dumps({"k": value.isoformat(), "i": str(pk), "b": backwards})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(cursor: str, *, by_id: bool = True):
        """(backwards, (value, tie-breaker)); anything not made by `encode` is a 400 naming
        `cursor`. The tie-breaker is a UUID `id`, or (`by_id=False`) a short text."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            value = parse_datetime(data["k"])
            pk = uuid.UUID(data["i"]) if by_id else data["i"]
            if not by_id and not (isinstance(pk, str) and len(pk) <= 255 and "\x00" not in pk):
                raise ValueError  # (PostgreSQL refuses NUL in text)
            backwards = data["b"]
            if value is None or value.tzinfo is None or not isinstance(backwards, bool):
                raise ValueError
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            raise ValidationFailed.on(
                "cursor", "Invalid cursor: use a `next`/`previous` link."
            ) from None
        return backwards, (value, pk)

    def _page_size(self, request) -> int:
        try:
            size = int(request.query_params[self.page_size_query_param])
        except (KeyError, ValueError):
            return self.page_size
        return min(size, self.max_page_size) if size > 0 else self.page_size

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque: the `next` or `previous` link of a page. Omit for the "
                "newest page.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": "Rows per page: default 20, clamped to 100.",
                "schema": {"type": "integer"},
            },
            {
                "name": self.legacy_query_param,
                "required": False,
                "in": "query",
                "deprecated": True,
                "description": "Deprecated: page-number pages (with `count`) for old clients.",
                "schema": {"type": "integer"},
            },
        ]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "description": "Only with the deprecated `page` parameter.",
                },
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }
