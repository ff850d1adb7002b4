"""Model fields the house uses instead of Django's, for what they read.

`JSONField` is Django's JSONField with its column text decoded by orjson. Django decodes
every JSON value it reads with `json.loads` (a Python frame and a decoder object per value):
a page of 50 campaigns reads ≈ 250 of them (contents' data and translations, the
schedule's exclusion dates...), a page of devices 150. orjson decodes the same text to the
same values, with three exceptions, which go to `json.loads` as before: what it refuses (an
infinite number, a lone surrogate) and any integer that could exceed 64 bits (orjson makes
it a float, `json` keeps it exact) — a text with a run of 19 or more digits is decoded by
`json` whatever the run is. A field with its own `decoder` is always decoded by `json`.

Migrations see Django's JSONField (`deconstruct`): the column, its type and every
migration stay as they were.
"""

import re

import orjson
from django.db import models

MAYBE_BEYOND_64_BITS = re.compile(r"\d{19}")


class JSONField(models.JSONField):
    def from_db_value(self, value, expression, connection):
        if type(value) is str and self.decoder is None and not MAYBE_BEYOND_64_BITS.search(value):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass  # json decides: its value, or the text itself as Django returns it
        return super().from_db_value(value, expression, connection)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs
