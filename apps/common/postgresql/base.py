"""Django's PostgreSQL backend, with date-times read by psycopg's C loader.

Django reads every `timestamptz` value through its own loader, a subclass of psycopg's
pure-Python one (`BaseTzLoader`): it parses the text in Python, then sets Django's time zone
object with `replace(tzinfo=...)`. A page of 50 notifications holds 150 date-times, 50
deliveries 560: ≈ 0.4 ms of CPU per page of notifications that `/me` (three date-times)
does not pay. psycopg's C loader parses the same text ≈ 10 times faster but cannot be
subclassed, so this loader calls it and then does exactly what Django's does: the same
`replace(tzinfo=connection.timezone)` on a value in the session's time zone — the same
datetime object, with the same tzinfo object (a test compares them). In the usual case, a
session in Django's own zone (UTC), the parser's values already carry that tzinfo object and
psycopg is handed the parser's method itself: ≈ 3,000 instructions a value instead of ≈ 14,000
(valgrind), a seventh of a page of deliveries' cost.

Only when psycopg runs its C implementation (psycopg[binary] or [c]); otherwise Django's
loader stays.

`prepared_statements()`: the cursors opened inside it bind parameters on the server and have
psycopg prepare each statement on its first run, and the session uses generic plans, so
PostgreSQL parses and plans such a statement once per session (a page of one campaign's
notifications: planning ≈ 1.2 ms, 11 partitions, every time; a generic plan executes in
0.13 ms, planned in 0.013). Django's own cursors bind on the client and never prepare (some
SQL it writes is not preparable, #20516): this is only for the statements chosen to run
inside it (cursor pages, whose window bounds are literals so that a generic plan is still
pruned to its partitions). `plan_cache_mode=force_generic_plan` holds for the session: it
also makes PL/pgSQL's statements generic (the row-version triggers' one-row updates by id,
planned alike either way). The database option `prepared_statements` (DB_PREPARED_STATEMENTS)
turns both off, for a pooler that cannot keep a session's prepared statements (PgBouncer in
transaction mode before 1.21).

Everything else is Django's backend unchanged (`vendor` is "postgresql").
"""

from contextlib import contextmanager

import psycopg
from django.db.backends.postgresql import base
from psycopg.pq import Format

TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid
# With the C implementation, the loader psycopg registers by default is its C class.
C_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
HAS_C_LOADER = psycopg.pq.__impl__ in ("binary", "c")
SAMPLE = b"2000-01-01 00:00:00+00"


class TimestamptzLoader(psycopg.adapt.Loader):
    """Django's `BaseTzLoader` result through the C parser. `timezone` is set per subclass:
    Django's `create_cursor()` compares it with the connection's and replaces the loader
    with its own when they differ."""

    timezone = None

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        parse = C_TIMESTAMPTZ_LOADER(oid, context).load
        if parse(SAMPLE).tzinfo is self.timezone:
            # The session's zone is Django's (UTC, as Django sets it): the parser's values
            # are already Django's, so psycopg calls the C method itself, with no Python
            # frame and no replace() per value (≈ 1 µs less each).
            self.load = parse
        else:
            self._parse = parse

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


PREPARE_WHEN_ASKED = 2**31  # executions before psycopg prepares by itself: never, in practice


class PreparingCursor(base.ServerBindingCursor):
    """Server-side binding, and every statement prepared (psycopg keeps the last
    `prepared_max` of a session, deallocating the least recently used)."""

    def execute(self, query, params=None, *, prepare=True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


class DatabaseOperations(base.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        if isinstance(cursor, PreparingCursor):
            # What Django logs for its own server-binding cursors: the SQL with the values
            # quoted in, runnable as written (the sent text has $1, $2…) — and, as Django
            # does, nothing for values that cannot be quoted (a NUL in a text): the
            # statement's own error is the one to raise.
            try:
                return self.compose_sql(sql, params)
            except psycopg.errors.DataError:
                return None
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    preparing = False

    @property
    def prepares(self) -> bool:
        return self.settings_dict["OPTIONS"].get("prepared_statements", True)

    @contextmanager
    def prepared_statements(self):
        """Cursors opened inside are PreparingCursors (a wrapper belongs to one thread)."""
        outer, self.preparing = self.preparing, self.prepares
        try:
            yield
        finally:
            self.preparing = outer

    def create_cursor(self, name=None):
        if name or not self.preparing:
            return super().create_cursor(name)
        cursor = PreparingCursor(self.connection)
        # As Django's create_cursor: its time-zone loader where the connection's differs.
        tzloader = self.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        if self.timezone != tzloader.timezone:
            base.register_tzloader(self.timezone, cursor)
        return cursor

    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop("prepared_statements", None)
        if self.prepares:
            # In the startup packet: no round trip, and no transaction to roll it back.
            options = params.get("options", "")
            params["options"] = f"{options} -c plan_cache_mode=force_generic_plan".strip()
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.prepares:
            # Django turns psycopg's preparing off (None), which refuses even an explicit
            # prepare=True; its own cursors never prepare (client-side binding) whatever
            # this says, so a number only lets PreparingCursor's statements be prepared.
            connection.prepare_threshold = PREPARE_WHEN_ASKED
        if HAS_C_LOADER:
            loader = type(
                "TimestamptzLoader",
                (TimestamptzLoader,),
                {"timezone": self.timezone, "__module__": __name__},
            )
            connection.adapters.register_loader(TIMESTAMPTZ_OID, loader)
        return connection
