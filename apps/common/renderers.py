"""The API's JSON renderer (DEFAULT_RENDERER_CLASSES): DRF's JSONRenderer, encoded by orjson.

DRF encodes with `json.dumps` and its JSONEncoder, whose Python `default` runs for every
value the C encoder does not know; a page of 50 rows took 0.15-0.5 ms of CPU to encode
(bench/lists.py's pages), orjson ~0.02 ms. The JSON is DRF's: compact, UTF-8, U+2028 and
U+2029 escaped; date-times, decimals, lazy strings and everything else orjson does not
encode itself go through DRF's encoder's `default`. What orjson refuses (an integer beyond
64 bits, a lone surrogate, DRF's own TypeError for an unknown type), an indented answer
(`Accept: application/json; indent=2`) and non-default JSON settings are left to DRF.
Two differences in form, not in value: floats are written in their shortest form (`1e-7`
where json writes `1e-07`), and a NaN or infinite float is `null` where DRF raises.

A value already encoded (`Encoded`: a cached representation, see apps.common.representations)
is written as it is, in either encoder.
"""

import orjson
from rest_framework import renderers
from rest_framework.utils import encoders

# Date-times (and dataclasses, which DRF does not encode) go to DRF's `default`.
OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
LINE_SEPARATOR, PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()


class Encoded:
    """A value already encoded as this renderer's JSON (bytes): written out as it is."""

    __slots__ = ("fragment", "json")

    def __init__(self, json: bytes) -> None:
        self.json = json
        self.fragment = orjson.Fragment(json)


class JSONEncoder(encoders.JSONEncoder):
    """DRF's encoder (indented answers, what orjson refuses), knowing `Encoded` values."""

    def default(self, obj):
        if isinstance(obj, Encoded):
            return orjson.loads(obj.json)
        return super().default(obj)


class JSONRenderer(renderers.JSONRenderer):
    encoder_class = JSONEncoder

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None or not self._as_drf_defaults(accepted_media_type, renderer_context):
            return super().render(data, accepted_media_type, renderer_context)
        encoder_default = self.encoder_class().default

        def default(obj):
            return obj.fragment if type(obj) is Encoded else encoder_default(obj)

        try:
            body = orjson.dumps(data, default=default, option=OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        # As DRF: JSON that is also a strict subset of JavaScript.
        if LINE_SEPARATOR in body or PARAGRAPH_SEPARATOR in body:
            body = body.replace(LINE_SEPARATOR, b"\\u2028").replace(PARAGRAPH_SEPARATOR, b"\\u2029")
        return body

    def _as_drf_defaults(self, accepted_media_type, renderer_context) -> bool:
        """Compact UTF-8 without NaN (DRF's defaults), not indented: what orjson writes."""
        indent = self.get_indent(accepted_media_type, renderer_context or {})
        return indent is None and self.compact and self.strict and not self.ensure_ascii
