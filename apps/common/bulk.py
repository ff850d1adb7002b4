"""Set-based statements the ORM cannot write, for the hot paths (ingest, the sending engine).

* `insert`: a multi-row `INSERT ... ON CONFLICT`. The ORM has no `INSERT ... ON CONFLICT DO
  UPDATE SET count = count + excluded.count`, and `bulk_create(ignore_conflicts=True)`
  cannot say which rows were inserted; both are needed.
* `update_rows`: one `UPDATE ... FROM <rows>` that gives each row its own values, under a
  condition (the engine's "only if this claim still owns it"), returning what it changed.
  `bulk_update` can do neither the condition nor the RETURNING.

PostgreSQL: one array parameter per column, `INSERT ... SELECT * FROM unnest(...)`, bound
server-side. A `VALUES (%s, ...), (%s, ...)` list of 12,000 placeholders costs psycopg more
time to parse than the database takes to insert the rows, and Django's client-side binding
quotes every value into the SQL text in Python; twelve arrays sent as binary parameters
cost almost nothing. The statement runs on Django's connection, in its transaction.
SQLite (the embedded mode): a plain multi-row VALUES list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.db import connection, models


def insert(
    model: type[models.Model],
    names: Sequence[str],
    rows: Sequence[Sequence],
    *,
    conflict: Sequence[str],
    on_conflict: str,
    returning: str | None = None,
) -> list[tuple]:
    """Insert `rows` (Python values, in the order of the field `names`); on a conflict on
    the `conflict` fields do `on_conflict` (SQL after `DO`). Returns the RETURNING rows.

    Only quoted identifiers from the model's metadata and placeholders are formatted into
    the statement; every value is a parameter.
    """
    if not rows:
        return []
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    target = ", ".join(quote(meta.get_field(name).column) for name in conflict)
    tail = f"ON CONFLICT ({target}) DO {on_conflict}"
    if returning:
        tail += f" RETURNING {quote(meta.get_field(returning).column)}"
    table = quote(meta.db_table)
    if connection.vendor == "postgresql":
        arrays = _arrays(fields, rows)
        unnest = ", ".join(f"%b::{_array_type(field)}" for field in fields)
        sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({unnest}) {tail}"  # noqa: S608
        return execute(sql, arrays, fetch=bool(returning))
    else:
        placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(rows))} {tail}"  # noqa: S608
        )
        preps = [field.get_db_prep_save for field in fields]
        params = [
            prep(value, connection) for row in rows for prep, value in zip(preps, row, strict=True)
        ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else []


def _arrays(fields: Sequence[models.Field], rows: Sequence[Sequence]) -> list[list]:
    """One array per column; JSON travels as text (cast by the statement)."""
    return [
        [json.dumps(row[i]) for row in rows]
        if isinstance(field, models.JSONField)
        else [row[i] for row in rows]
        for i, field in enumerate(fields)
    ]


def _array_type(field: models.Field) -> str:
    # Foreign keys take their target's type ("uuid"); JSON travels as text and is cast.
    return f"{field.db_type(connection)}[]"


def update_rows(
    model: type[models.Model],
    names: Sequence[str],
    rows: Sequence[Sequence],
    *,
    where: Mapping[str, Any] | None = None,
    between: Mapping[str, tuple[Any, Any]] | None = None,
    returning: Sequence[str] = (),
) -> list[tuple]:
    """Set each row's values: `names[0]` is the key (usually "id") that picks the row, the
    other names are the fields it sets. Only rows that also match `where` (field -> value,
    equality) and `between` (field -> (low, high), inclusive: on a partitioned table, bounds
    on its key let the statement visit only the partitions they cover) change. Returns the
    RETURNING values (`returning` field names) of the rows that changed, converted to
    Python values."""
    if not rows:
        return []
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    key, *values = fields
    sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in values)
    conditions = [f"{table}.{quote(key.column)} = v.{quote(key.column)}"]
    where_fields = [(meta.get_field(name), value) for name, value in (where or {}).items()]
    conditions += [f"{table}.{quote(field.column)} = %s" for field, _ in where_fields]
    for name, (low, high) in (between or {}).items():
        field = meta.get_field(name)
        conditions.append(f"{table}.{quote(field.column)} BETWEEN %s AND %s")
        where_fields += [(field, low), (field, high)]
    returned = [meta.get_field(name) for name in returning]
    tail = " AND ".join(conditions)
    if returned:
        tail += " RETURNING " + ", ".join(f"{table}.{quote(f.column)}" for f in returned)
    aliases = ", ".join(quote(f.column) for f in fields)
    if connection.vendor == "postgresql":
        arrays = _arrays(fields, rows)
        unnest = ", ".join(f"%b::{_array_type(field)}" for field in fields)
        sql = f"UPDATE {table} SET {sets} FROM unnest({unnest}) AS v({aliases}) WHERE {tail}"  # noqa: S608
        found = execute(sql, [*arrays, *(value for _, value in where_fields)], fetch=True)
    else:
        placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"WITH v({aliases}) AS (VALUES {', '.join([placeholders] * len(rows))}) "  # noqa: S608
            f"UPDATE {table} SET {sets} FROM v WHERE {tail}"
        )
        params = [
            field.get_db_prep_value(value, connection)
            for row in rows
            for field, value in zip(fields, row, strict=True)
        ] + [field.get_db_prep_value(value, connection) for field, value in where_fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
    if not returned:
        return []
    return [
        tuple(field.to_python(value) for field, value in zip(returned, row, strict=True))
        for row in found
    ]


_ONLY_WHEN_ASKED = 2**62


def execute(sql: str, params, *, fetch: bool = True, prepare: bool | None = None) -> list[tuple]:
    """(PostgreSQL) Run one statement with server-side binding on Django's connection, in
    its transaction; returns its rows. Database errors surface as Django's
    (OperationalError, ...), like any ORM query's.

    `prepare=True`: as a prepared statement of this connection (parsed and planned once per
    connection, not per call; psycopg keeps it by its text) — for a hot statement run
    many times with different values. Default: not prepared (Django's setting). Behind a
    connection pooler in transaction mode, that needs the pooler's support for prepared
    statements (PgBouncer >= 1.21: max_prepared_statements)."""
    connection.ensure_connection()
    raw = connection.connection
    if prepare and raw.prepare_threshold is None:
        # Django turns psycopg's automatic preparing off (prepare_threshold=None), and then
        # psycopg ignores prepare=True too. A threshold never reached keeps it off for every
        # other statement and lets this one be prepared.
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        return cursor.fetchall() if fetch and cursor.description else []
