"""`queryset.first()` compiled to SQL once per connection and run again with other values.

Building and compiling a queryset costs Django ~0.5 ms of CPU (lookups resolved, joins set
up, SQL assembled) — every time, even when only a value changes. For a query that every
request of a kind runs (the tenancy check's membership lookup), `CompiledFirst` does that
once per database connection: the queryset is built by the same function as always, with
placeholder values, compiled, and the placeholders' positions among the SQL parameters are
remembered; a call then only executes the SQL with the real values and builds the model
instances as Django does (the database's converters applied, `select_related` rows cached
on their foreign key). What a row is and which rows qualify stays written once, in the
queryset; only the compiling is saved.

Limits (checked when compiling): the queryset returns model instances with at most
one level of `select_related` foreign keys, all columns selected (no `only()`/`defer()`, no
annotations), and each value is a UUID (the placeholders are random UUIDs) that is one SQL
parameter.
"""

import threading
import uuid
import weakref
from collections.abc import Callable

from django.db import connections
from django.db.models import Model, QuerySet


class CompiledFirst:
    """`build(**values).first()`, compiled once per connection."""

    def __init__(self, build: Callable[..., QuerySet], **placeholder_fields):
        """`build(**values)` gives the queryset; `placeholder_fields` maps each value's name to
        the UUID model field whose database form it takes (e.g. a primary key): it prepares
        the placeholder and the real value alike."""
        self._build = build
        self._fields = placeholder_fields
        # Per connection: converters and prepared values are bound to it, and a connection
        # belongs to one thread (gunicorn's threads each have theirs).
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, using: str = "default", **values) -> Model | None:
        """`build(**values).first()`: the first instance, or None."""
        connection = connections[using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = _Compiled(self._build, self._fields, connection)
            with self._lock:
                self._compiled[connection] = compiled
        return compiled.run(values)


class _Compiled:
    def __init__(self, build, fields: dict, connection):
        self.connection = connection
        self.fields = fields
        placeholders = {name: uuid.uuid4() for name in fields}
        queryset = build(**placeholders)
        # What QuerySet.first() runs: its ordering (the primary key if none), one row.
        queryset = (queryset if queryset.ordered else queryset.order_by("pk"))[:1]
        query = queryset.query
        if query.deferred_loading != (frozenset(), True) or query.annotation_select:
            raise TypeError("CompiledFirst needs every column and no annotations.")
        compiler = query.get_compiler(connection=connection)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        # Where each placeholder sits among the parameters (exactly once each).
        self.positions = {}
        for name, field in fields.items():
            prepared = field.get_db_prep_value(placeholders[name], connection)
            found = [i for i, param in enumerate(self.params) if param == prepared]
            if len(found) != 1:
                raise TypeError(f"CompiledFirst: placeholder {name!r} is not one SQL parameter.")
            self.positions[name] = found[0]
        self.compiler = compiler
        select = [column for column, _sql, _alias in compiler.select]
        self.converters = compiler.get_converters(select)
        info = compiler.klass_info
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

    def run(self, values: dict) -> Model | None:
        params = list(self.params)
        for name, position in self.positions.items():
            params[position] = self.fields[name].get_db_prep_value(values[name], self.connection)
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        instance = self.model.from_db(
            self.connection.alias, self.names, [row[i] for i in self.columns]
        )
        for model, columns, names, set_on_instance, set_on_related in self.related:
            values = [row[i] for i in columns]
            related = None
            if values[names.index(model._meta.pk.attname)] is not None:  # as RelatedPopulator
                related = model.from_db(self.connection.alias, names, values)
                set_on_related(related, instance)
            set_on_instance(instance, related)
        return instance
