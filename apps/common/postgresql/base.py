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
loader stays. Everything else is Django's backend unchanged (`vendor` is "postgresql").
"""

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


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if HAS_C_LOADER:
            loader = type(
                "TimestamptzLoader",
                (TimestamptzLoader,),
                {"timezone": self.timezone, "__module__": __name__},
            )
            connection.adapters.register_loader(TIMESTAMPTZ_OID, loader)
        return connection
