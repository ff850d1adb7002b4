"""Querysets compiled to SQL once per connection and run again with other values.

Building and compiling a queryset costs Django ~0.5 ms of CPU (lookups resolved, joins set
up, SQL assembled) — every time, even when only a value changes. For a query that every
request of a kind runs, this module does that once per database connection: the queryset is
built by the same function as always, with placeholder values (random UUIDs), compiled, and
the placeholders' positions among the SQL parameters are remembered; a call then only
executes the SQL with the real values and turns the rows into what Django would have
returned (the database's converters applied). What a row is and which rows qualify stays
written once, in the queryset; only the compiling is saved.

- `CompiledFirst` — `queryset.first()`: model instances with all columns (no `only()`/
  `defer()`, no annotations) and at most one level of `select_related` foreign keys
  (cached on their foreign key, as Django does) — the tenancy check's membership lookup; or
  one column's value, for a `values_list(column, flat=True)` queryset — a campaign's check
  on its notifications and jobs (its id alone) and stats (the instance).
- `CompiledRows` — a `values_list(..., named=True)` queryset filtered by a list of UUIDs
  (`field__in=ids`): the named tuples, in the queryset's order. Compiled once per number of
  ids (a page of 50 campaigns is one statement; at most `MAX_IDS` ids, more run the queryset).
  A page's prefetch (the campaign list's contents).

Each value is a UUID that is one SQL parameter (checked when compiling).
"""

import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import FlatValuesListIterable, ModelIterable, NamedValuesListIterable
from django.db.models.utils import create_namedtuple_class


class _PerConnection:
    """What is compiled, per connection: converters and prepared values are bound to it, and
    a connection belongs to one thread (gunicorn's threads each have theirs)."""

    def __init__(self):
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def compiled(self, connection, key, compile: Callable):
        by_key = self._compiled.get(connection)
        if by_key is None:
            with self._lock:
                by_key = self._compiled.setdefault(connection, {})
        found = by_key.get(key)
        if found is None:
            found = by_key[key] = compile()
        return found


class _Statement:
    """A queryset's SQL and parameters, and where each placeholder sits among them."""

    def __init__(self, queryset: QuerySet, connection, placeholders: Sequence):
        """`placeholders`: (field, value) pairs, each value found exactly once among the
        parameters in the field's database form."""
        self.connection = connection
        self.compiler = queryset.query.get_compiler(connection=connection)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        self.fields = [field for field, _value in placeholders]
        self.positions = []
        for field, value in placeholders:
            prepared = field.get_db_prep_value(value, connection)
            found = [i for i, param in enumerate(self.params) if param == prepared]
            if len(found) != 1:
                raise TypeError(f"Compiled query: placeholder {value} is not one SQL parameter.")
            self.positions.append(found[0])
        self.select = [column for column, _sql, _alias in self.compiler.select]
        self.converters = self.compiler.get_converters(self.select)

    def execute(self, values: Sequence, fetch: Callable):
        """`fetch(cursor)`'s rows with these values in the placeholders' places, converted."""
        params = list(self.params)
        for field, position, value in zip(self.fields, self.positions, values, strict=True):
            params[position] = field.get_db_prep_value(value, self.connection)
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = fetch(cursor)
        if self.converters and rows:
            rows = list(self.compiler.apply_converters(rows, self.converters))
        return rows


class CompiledFirst:
    """`build(**values).first()`, compiled once per connection."""

    def __init__(self, build: Callable[..., QuerySet], **placeholder_fields):
        """`build(**values)` gives the queryset; `placeholder_fields` maps each value's name to
        the UUID model field whose database form it takes (e.g. a primary key): it prepares
        the placeholder and the real value alike."""
        self._build = build
        self._fields = placeholder_fields
        self._per_connection = _PerConnection()

    def __call__(self, using: str = "default", **values) -> Any:
        """`build(**values).first()`: the first instance (or value), or None."""
        connection = connections[using]
        compiled = self._per_connection.compiled(
            connection, None, lambda: self._compile(connection)
        )
        return compiled.run([values[name] for name in self._fields])

    def _compile(self, connection):
        placeholders = {name: uuid.uuid4() for name in self._fields}
        queryset = self._build(**placeholders)
        # What QuerySet.first() runs: its ordering (the primary key if none), one row.
        queryset = (queryset if queryset.ordered else queryset.order_by("pk"))[:1]
        statement = _Statement(
            queryset,
            connection,
            [(self._fields[name], placeholders[name]) for name in self._fields],
        )
        if queryset._iterable_class is FlatValuesListIterable:
            return _FirstValue(statement)
        return _FirstInstance(queryset, statement, connection)


class _FirstValue:
    def __init__(self, statement: _Statement):
        self.statement = statement

    def run(self, values: list):
        rows = self.statement.execute(values, lambda cursor: cursor.fetchmany(1))
        return rows[0][0] if rows else None


class _FirstInstance:
    def __init__(self, queryset: QuerySet, statement: _Statement, connection):
        query = queryset.query
        if (
            queryset._iterable_class is not ModelIterable
            or query.deferred_loading != (frozenset(), True)
            or query.annotation_select
        ):
            raise TypeError("CompiledFirst needs instances with every column and no annotations.")
        self.alias = connection.alias
        self.statement = statement
        select = self.statement.select
        info = self.statement.compiler.klass_info
        self.model, self.columns = info["model"], info["select_fields"]
        self.names = [select[i].target.attname for i in self.columns]
        self.related = []
        for related in info.get("related_klass_infos", []):
            if related.get("related_klass_infos") or related["reverse"]:
                raise TypeError("CompiledFirst: one level of forward select_related only.")
            columns = related["select_fields"]
            self.related.append(
                (
                    related["model"],
                    columns,
                    [select[i].target.attname for i in columns],
                    related["local_setter"],
                    related["remote_setter"],
                )
            )

    def run(self, values: list) -> Model | None:
        rows = self.statement.execute(values, lambda cursor: cursor.fetchmany(1))
        if not rows:
            return None
        row = rows[0]
        instance = self.model.from_db(self.alias, self.names, [row[i] for i in self.columns])
        for model, columns, names, set_on_instance, set_on_related in self.related:
            values = [row[i] for i in columns]
            related = None
            if values[names.index(model._meta.pk.attname)] is not None:  # as RelatedPopulator
                related = model.from_db(self.alias, names, values)
                set_on_related(related, instance)
            set_on_instance(instance, related)
        return instance


class CompiledRows:
    """`list(build(ids))` for a named values_list queryset filtered by `field__in=ids`,
    compiled once per connection and number of ids."""

    MAX_IDS = 100  # the largest page: a longer list runs the queryset (compiled per call)

    def __init__(self, build: Callable[[list], QuerySet], field):
        """`build(ids)` gives the queryset; `field` is the UUID model field whose database
        form each id takes."""
        self._build = build
        self._field = field
        self._per_connection = _PerConnection()

    def __call__(self, ids: Sequence, using: str = "default") -> list:
        ids = list(ids)
        if not ids:
            return []  # what `__in=[]` answers, without a query
        if len(ids) > self.MAX_IDS:
            return list(self._build(ids))
        connection = connections[using]
        compiled = self._per_connection.compiled(
            connection, len(ids), lambda: _NamedRows(self._build, self._field, len(ids), connection)
        )
        return compiled.run(ids)


class _NamedRows:
    def __init__(self, build, field, count: int, connection):
        placeholders = [uuid.uuid4() for _ in range(count)]
        queryset = build(placeholders)
        if queryset._iterable_class is not NamedValuesListIterable:
            raise TypeError("CompiledRows needs a values_list(..., named=True) queryset.")
        query = queryset.query
        if query.extra_select or query.annotation_select:
            raise TypeError("CompiledRows needs columns only (no extra or annotations).")
        self.statement = _Statement(
            queryset, connection, [(field, value) for value in placeholders]
        )
        if len(self.statement.select) != len(query.values_select):
            raise TypeError("CompiledRows: the statement selects more than the named columns.")
        self.row_class = create_namedtuple_class(*query.values_select)

    def run(self, ids: list) -> list:
        rows = self.statement.execute(ids, lambda cursor: cursor.fetchall())
        new, row_class = tuple.__new__, self.row_class
        return [new(row_class, row) for row in rows]
