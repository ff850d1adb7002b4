"""The envelope of a batch request from an app: `{"<name>": [1 to `limit` items]}`."""

from typing import Any

from apps.common.errors import ValidationFailed


def items_of(payload: Any, name: str, limit: int) -> list:
    """The list under `name`, or a 400 naming it (the items themselves are checked one by
    one by the caller, so that a bad one does not sink the rest)."""
    if not isinstance(payload, dict) or name not in payload:
        raise ValidationFailed.on(name, "This field is required.")
    items = payload[name]
    if not isinstance(items, list):
        raise ValidationFailed.on(name, f"Expected a list of {name}.")
    if not 1 <= len(items) <= limit:
        raise ValidationFailed.on(name, f"Send 1 to {limit} {name} per request.")
    return items
