"""Time partitions of the big append-only tables (PostgreSQL only; README "Retention").

Each table in PARTITIONED is RANGE-partitioned on its time key by UTC day (the audit log by
week, Monday to Monday):

    <table>_pYYYYMMDD   [start, start + 1 day or week)
    <table>_before      [MINVALUE, conversion day)  made by the conversion: the rows it found
    <table>_default     DEFAULT: a safety net, so an insert never fails when maintenance is
                        late; ensure_partitions moves its rows into their day's partition

so retention drops whole days (drop_expired) instead of deleting rows one by one. SQLite
keeps the plain tables and every function here does nothing there.

Primary keys and unique constraints of a partitioned table must hold the partition key: the
primary key is (id, key) in the database (Django's model state keeps `id`, a random UUID).
Nothing references these tables by foreign key.

Maintenance DDL runs with a short lock_timeout: when a long transaction holds a lock the
statement gives up (logged) and the next run tries again, rather than queueing every
writer of the table behind its own lock request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.db.utils import OperationalError
from django.utils import timezone

from apps.common.logging import get_logger

logger = get_logger("pushpilot.partitions")

# table -> (the time key it is partitioned on, days per partition). A statement that cannot
# bound the key plans every partition (measured: ~5 ms at 98, ~40 ms at 373): the audit log,
# kept a year by default and rarely read, has a partition a week (~55), the others a day.
PARTITIONED = {
    "analytics_analyticsevent": ("occurred_at", 1),
    "notifications_notification": ("created_at", 1),
    "common_auditlog": ("created_at", 7),
}
_A_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
LOCK_TIMEOUT = "1s"
_BOUND = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: MINVALUE (or the DEFAULT partition)
    upper: datetime | None  # None: the DEFAULT partition
    is_default: bool = False


def enabled() -> bool:
    return connection.vendor == "postgresql"


def start_of_day(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def span_of(table: str) -> timedelta:
    return timedelta(days=PARTITIONED[table][1])


def span_start(table: str, moment: datetime) -> datetime:
    """The start of the partition of `table` that holds `moment`: its UTC day, or the Monday
    of its week."""
    day = start_of_day(moment)
    return day - timedelta(days=(day - _A_MONDAY).days % PARTITIONED[table][1])


def partition_name(table: str, moment: datetime) -> str:
    return f"{table}_p{span_start(table, moment):%Y%m%d}"


def is_partitioned(table: str) -> bool:
    if not enabled():
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partitions(table: str) -> list[Partition]:
    """The table's partitions, oldest first (the DEFAULT one last)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, is_default=True))
            continue
        lower, upper = _BOUND.match(bound).groups()
        found.append(Partition(name, _bound_value(lower), _bound_value(upper)))
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (p.is_default, p.lower or oldest))


def _bound_value(text: str) -> datetime | None:
    if text == "MINVALUE":
        return None
    value = datetime.fromisoformat(text.strip("'"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- reading ----------------------------------------------------------------------------------
# A page ordered by the time key reads these many spans after the one it starts in before it
# reads the rest: a busy workspace fills a page from the first statement, a quiet one pays
# three at most.
NEAR_SPANS = 7


def windows(
    table: str, key: str, start: datetime | None, *, descending: bool, sparse: bool = False
) -> list[tuple[datetime | None, datetime | None]]:
    """The disjoint ranges [lo, hi) of `key` (None: unbounded) that a walk over `table`
    ordered by `key` from `start` (None: now) reads one statement each, nearest first: the
    span holding `start` and all beyond it, the next NEAR_SPANS spans, then the rest.
    `sparse` (a walk that finds tens of rows a span, like one campaign's notifications): the
    first two in one statement — planning the near spans together costs PostgreSQL about
    what planning them apart does, and a second statement ≈ 2.7M instructions of Django.

    A statement whose key bounds are literals is pruned by the planner to the partitions
    they overlap (one unbounded statement plans and opens every partition: ~5 ms at 98).
    On a table not partitioned on `key` it is one unbounded range. Where the rows really
    are never matters for what is read, only for how many statements read it."""
    if not enabled() or PARTITIONED.get(table, (None,))[0] != key:
        return [(None, None)]
    span = span_of(table)
    first = span_start(table, start or timezone.now())
    if descending:
        near = first - NEAR_SPANS * span
        return (
            [(near, None), (None, near)] if sparse else [(first, None), (near, first), (None, near)]
        )
    after = first + span
    far = after + NEAR_SPANS * span
    return [(None, far), (far, None)] if sparse else [(None, after), (after, far), (far, None)]


class Bound(models.Value):
    """A window's bound, written into the SQL as a literal rather than a parameter: a
    statement PostgreSQL plans once (prepared: CursorPagination) is then still pruned to its
    window's partitions when planned, where a parameter leaves every partition in the plan
    for the executor to prune (a generic plan of all ~100: ~150 ms, per session)."""

    def __init__(self, value: datetime):
        super().__init__(value, output_field=models.DateTimeField())

    def as_postgresql(self, compiler, connection):
        return f"'{self.value.astimezone(UTC).isoformat()}'::timestamptz", []


# --- maintenance ------------------------------------------------------------------------------
def ensure_partitions(days_ahead: int, *, now: datetime | None = None) -> dict[str, list[str]]:
    """Create the missing partitions of every table: from the newest one (or today's)
    through today + `days_ahead`, and those of any day with rows in the DEFAULT partition
    (moved into theirs in the same transaction). Returns the partitions created per
    table; a table whose lock was not granted in time is left for the next run."""
    if not enabled():
        return {}
    today = start_of_day(now or timezone.now())
    created: dict[str, list[str]] = {}
    for table, (key, _) in PARTITIONED.items():
        if not is_partitioned(table):
            continue
        span = span_of(table)
        existing = partitions(table)
        days = {p.lower for p in existing if p.lower is not None and not p.is_default}
        uppers = [p.upper for p in existing if p.upper is not None]
        newest = max(uppers, default=None)
        # From the first one not covered when maintenance was late (the gap is closed).
        start = newest if newest is not None and newest < today else span_start(table, today)
        wanted = set()
        while start <= today + timedelta(days=days_ahead):
            wanted.add(start)
            start += span
        default = next((p.name for p in existing if p.is_default), None)
        if default:
            wanted |= {span_start(table, day) for day in _days_in(default, key)}
        covered = [(p.lower, p.upper) for p in existing if p.upper is not None]
        made = []
        for start in sorted(wanted - days):
            if any((lo is None or lo <= start) and start < hi for lo, hi in covered):
                continue  # inside an existing range (the `before` partition)
            try:
                _create_partition(table, key, start, start + span, default)
            except OperationalError as error:  # lock_timeout: the next run tries again
                logger.warning("partition_not_created", table=table, start=str(start.date()),
                               error=str(error).strip())  # fmt: skip
                break
            made.append(partition_name(table, start))
        if made:
            logger.info("partitions_created", table=table, partitions=made)
            created[table] = made
    return created


def _days_in(default: str, key: str) -> set[datetime]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('day', {quote(key)} AT TIME ZONE 'UTC') "  # noqa: S608
            f"FROM {quote(default)}"
        )
        return {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}


def _create_partition(
    table: str, key: str, lo: datetime, hi: datetime, default: str | None
) -> None:
    """One partition [lo, hi), made as a plain table and attached: ATTACH takes only a SHARE
    UPDATE EXCLUSIVE lock on the parent (writers go on), where CREATE ... PARTITION OF
    would take an exclusive one. Rows of its range waiting in the DEFAULT partition move
    in first, in the same transaction (the attach refuses while any is left there)."""
    quote = connection.ops.quote_name
    name = partition_name(table, lo)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(
            f"CREATE TABLE {quote(name)} (LIKE {quote(table)} "
            "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        if default:
            # What ATTACH takes anyway, taken first (no upgrade) and held to the commit: no
            # new row of this range can slip into DEFAULT meanwhile.
            cursor.execute(f"LOCK TABLE {quote(default)} IN ACCESS EXCLUSIVE MODE")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {quote(default)} "  # noqa: S608
                f"WHERE {quote(key)} >= %s AND {quote(key)} < %s RETURNING *) "
                f"INSERT INTO {quote(name)} SELECT * FROM moved",
                [lo, hi],
            )
        cursor.execute(
            f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} "
            "FOR VALUES FROM (%s) TO (%s)",
            [lo, hi],
        )


def wholly_before(table: str, before: datetime) -> list[Partition]:
    """The partitions of `table` whose every row is before `before` (upper bound at or
    before it): none on a plain table."""
    if not is_partitioned(table):
        return []
    return [
        p
        for p in partitions(table)
        if not p.is_default and p.upper is not None and p.upper <= before
    ]


def drop_expired(table: str, before: datetime) -> list[str]:
    """DETACH and DROP every partition of `table` wholly before `before`; returns their
    names. Stops at the first lock not granted in time."""
    quote = connection.ops.quote_name
    dropped = []
    for partition in wholly_before(table, before):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute(
                    f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(partition.name)}"
                )
                cursor.execute(f"DROP TABLE {quote(partition.name)}")
        except OperationalError as error:
            logger.warning("partition_not_dropped", table=table, partition=partition.name,
                           error=str(error).strip())  # fmt: skip
            break
        dropped.append(partition.name)
    return dropped


# --- the conversion (migrations) --------------------------------------------------------------
def partition_table(table: str, *, now: datetime | None = None) -> None:
    """(Migration) Turn the plain `table` into one partitioned by time, keeping its
    columns, defaults, checks, foreign keys, indexes and rows: the primary key becomes
    (id, key); a unique constraint without the key is refused (it cannot be kept). The
    partitions through PARTITION_DAYS_AHEAD are made, as maintenance makes them."""
    key = PARTITIONED[table][0]
    quote = connection.ops.quote_name
    today = start_of_day(now or timezone.now())
    span = span_of(table)
    constraints, indexes = _definitions(table)
    for name, kind, definition in constraints:
        if kind == "u" and key not in _columns(definition):
            raise ValueError(f"{table}.{name} must include {key} to be partitioned")
    # Every existing row goes to one `before` partition (dropped once the longest window has
    # passed today): a day each for a year of history would be ~365 partitions for every
    # statement to plan until retention reached them.
    first = span_start(table, today)
    with connection.cursor() as cursor:
        staged = f"{table}__partitioned"
        cursor.execute(
            f"CREATE TABLE {quote(staged)} (LIKE {quote(table)} INCLUDING DEFAULTS "
            f"INCLUDING CONSTRAINTS INCLUDING STORAGE) PARTITION BY RANGE ({quote(key)})"
        )
        cursor.execute(
            f"CREATE TABLE {quote(table + '_before')} PARTITION OF {quote(staged)} "
            "FOR VALUES FROM (MINVALUE) TO (%s)",
            [first],
        )
        start = first
        while start <= today + timedelta(days=settings.PARTITION_DAYS_AHEAD):
            cursor.execute(
                f"CREATE TABLE {quote(partition_name(table, start))} PARTITION OF "
                f"{quote(staged)} FOR VALUES FROM (%s) TO (%s)",
                [start, start + span],
            )
            start += span
        cursor.execute(
            f"CREATE TABLE {quote(table + '_default')} PARTITION OF {quote(staged)} DEFAULT"
        )
        _replace(cursor, table, staged, constraints, indexes, f"PRIMARY KEY (id, {quote(key)})")


def unpartition_table(table: str) -> None:
    """(Migration, reverse) The plain table again, with every row; primary key (id)."""
    quote = connection.ops.quote_name
    constraints, indexes = _definitions(table)
    staged = f"{table}__plain"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {quote(staged)} (LIKE {quote(table)} INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        )
        _replace(cursor, table, staged, constraints, indexes, "PRIMARY KEY (id)")


def _replace(cursor, table: str, staged: str, constraints, indexes, primary_key: str) -> None:
    """Both directions of the conversion: `staged` takes `table`'s rows and its place, with
    its constraints (the primary key as `primary_key`) and indexes."""
    quote = connection.ops.quote_name
    cursor.execute(f"INSERT INTO {quote(staged)} SELECT * FROM {quote(table)}")  # noqa: S608
    cursor.execute(f"DROP TABLE {quote(table)}")
    cursor.execute(f"ALTER TABLE {quote(staged)} RENAME TO {quote(table)}")
    for name, kind, definition in constraints:
        definition = primary_key if kind == "p" else definition
        cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
    for definition in indexes:
        cursor.execute(definition)
    # Fresh tables have no statistics: until autovacuum gets there, the planner would guess
    # (a list filtered by campaign scanned the workspace's whole index), and it never
    # analyzes a partitioned parent itself.
    cursor.execute(f"ANALYZE {quote(table)}")


def _definitions(table: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The table's primary key, unique and foreign-key constraints (name, kind, definition)
    and the definitions of its other indexes (checks travel with LIKE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u', 'f') "
            "ORDER BY contype = 'f', conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = to_regclass(%s) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
            " AND c.conrelid = i.indrelid) ORDER BY i.indexrelid",
            [table],
        )
        # A partitioned parent's index reads "ON ONLY <table>": recreated on every partition.
        indexes = [row[0].replace(" ON ONLY ", " ON ", 1) for row in cursor.fetchall()]
    return constraints, indexes


def _columns(definition: str) -> list[str]:
    inside = definition[definition.index("(") + 1 : definition.index(")")]
    return [column.strip().strip('"') for column in inside.split(",")]


def migration(table: str):
    """The migration operation that partitions `table` on PostgreSQL (reversible); nothing on
    SQLite. Run after the operations that bring its constraints to their final form: the
    conversion copies what the database holds."""
    from django.db import migrations

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            partition_table(table)

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            unpartition_table(table)

    return migrations.RunPython(forward, backward, elidable=False)
