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

- `CompiledPage` — a cursor page (apps/common/pagination.py) of `build(**values)`: the
  paginator's ordering, key condition, time window and limit applied to it with placeholders
  for the key too, compiled once per connection and page shape; the rows become instances
  as Django's iterator makes them (annotations included). A campaign's notifications and
  jobs, and the workspace-wide lists (tenancy.CompiledWorkspaceListMixin).

Each value is a UUID (a page's key also a date-time) that is a SQL parameter — once or more,
each place taking it (checked when compiling).
"""

import random
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import FlatValuesListIterable, ModelIterable, NamedValuesListIterable
from django.db.models.utils import create_namedtuple_class


class _PerConnection:
    """What is compiled, per connection: converters and prepared values are bound to it, and
    a connection belongs to one thread (gunicorn's threads each have theirs)."""

    def __init__(self, max_keys: int | None = None):
        """`max_keys`: how many keys a connection keeps (the oldest compiled goes first);
        None where the keys are few by construction."""
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def compiled(self, connection, key, compile: Callable):
        by_key = self._compiled.get(connection)
        if by_key is None:
            with self._lock:
                by_key = self._compiled.setdefault(connection, {})
        found = by_key.get(key)
        if found is None:
            if self._max_keys is not None and len(by_key) >= self._max_keys:
                del by_key[next(iter(by_key))]
            found = by_key[key] = compile()
        return found


class _Statement:
    """A queryset's SQL and parameters, and where each placeholder sits among them."""

    def __init__(self, queryset: QuerySet, connection, placeholders: Sequence):
        """`placeholders`: (field, value) pairs, each value found among the parameters in the
        field's database form (every place it is found takes the real value)."""
        self.connection = connection
        self.compiler = queryset.query.get_compiler(connection=connection)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        self.fields = [field for field, _value in placeholders]
        self.positions = []
        for field, value in placeholders:
            prepared = field.get_db_prep_value(value, connection)
            found = [i for i, param in enumerate(self.params) if param == prepared]
            if not found:
                raise TypeError(f"Compiled query: placeholder {value} is not a SQL parameter.")
            self.positions.append(found)
        self.select = [column for column, _sql, _alias in self.compiler.select]
        self.converters = self.compiler.get_converters(self.select)

    def execute(self, values: Sequence, fetch: Callable):
        """`fetch(cursor)`'s rows with these values in the placeholders' places, converted."""
        params = list(self.params)
        for field, positions, value in zip(self.fields, self.positions, values, strict=True):
            prepared = field.get_db_prep_value(value, self.connection)
            for position in positions:
                params[position] = prepared
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


class CompiledPage:
    """A cursor page of `build(**values)`, compiled once per connection and page shape.

    The paginator says what a page is (`page(queryset, key)`: its ordering, the condition
    "after this key", the time window and the limit) and what makes one page's SQL differ
    from another's (`shape`: whether there is a key, the direction, the window's literal
    bounds, the limit). The key's values are placeholders like the others."""

    MAX_SHAPES = 64  # per connection: a few windows a day, two directions, with a key or not

    def __init__(self, build: Callable[..., QuerySet], **placeholder_fields):
        """As CompiledFirst: `build(**values)` gives the rows; `placeholder_fields` maps each
        value's name to the UUID model field whose database form it takes."""
        self._build = build
        self._fields = placeholder_fields
        self._per_connection = _PerConnection(max_keys=self.MAX_SHAPES)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = self._build(**{name: uuid.uuid4() for name in self._fields}).model
        return self._model

    def rows(
        self,
        values: dict,
        key: tuple | None,
        *,
        key_fields: tuple[str, str],
        shape: tuple,
        page: Callable[[QuerySet, tuple | None], QuerySet],
        using: str = "default",
    ) -> list[Model]:
        """The page's instances: `page(build(**values), key)` run. `key_fields` names the
        model fields of the key's two values."""
        connection = connections[using]
        compiled = self._per_connection.compiled(
            connection,
            (key is not None, key_fields, shape),
            lambda: self._compile(connection, page, key_fields if key is not None else ()),
        )
        return compiled.run([*(values[name] for name in self._fields), *(key or ())])

    def _compile(self, connection, page, key_fields):
        placeholders = {name: uuid.uuid4() for name in self._fields}
        queryset = self._build(**placeholders)
        key = [
            (field, _placeholder(field))
            for field in map(queryset.model._meta.get_field, key_fields)
        ]
        queryset = page(queryset, tuple(value for _field, value in key) if key else None)
        statement = _Statement(
            queryset,
            connection,
            [(self._fields[name], placeholders[name]) for name in self._fields] + key,
        )
        return _PageRows(queryset, statement, connection)


def _placeholder(field):
    """A value no real key holds, of the field's kind (date-time, UUID or text)."""
    if field.get_internal_type() == "DateTimeField":
        return datetime(1, 1, 2, tzinfo=UTC) + timedelta(microseconds=random.getrandbits(40))
    if field.get_internal_type() == "UUIDField":
        return uuid.uuid4()
    return uuid.uuid4().hex


class _PageRows:
    """Rows into instances as Django's ModelIterable makes them, annotations included."""

    def __init__(self, queryset: QuerySet, statement: _Statement, connection):
        compiler = statement.compiler
        info = compiler.klass_info
        if (
            queryset._iterable_class is not ModelIterable
            or info.get("related_klass_infos")
            or queryset._known_related_objects
        ):
            raise TypeError("CompiledPage needs instances without select_related.")
        self.alias = connection.alias
        self.statement = statement
        columns = info["select_fields"]
        self.start, self.end = columns[0], columns[-1] + 1
        self.model = info["model"]
        self.names = [column.target.attname for column in statement.select[self.start : self.end]]
        self.annotations = list(compiler.annotation_col_map.items())

    def run(self, values: list) -> list[Model]:
        rows = self.statement.execute(values, lambda cursor: cursor.fetchall())
        instances = []
        for row in rows:
            instance = self.model.from_db(self.alias, self.names, row[self.start : self.end])
            for name, position in self.annotations:
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances
