"""Analytics writes: `keys` (ingest keys, write-only credentials shipped inside apps) and
`ingest` (events from apps). Other apps and the API call the names below."""

from apps.analytics.services.ingest import MAX_EVENTS_PER_REQUEST, IngestResult, ingest_events
from apps.analytics.services.keys import (
    IssuedKey,
    KeyPrincipal,
    create_ingest_key,
    note_key_used,
    principal_for_secret,
    revoke_ingest_key,
    rotate_ingest_key,
)

__all__ = [
    "MAX_EVENTS_PER_REQUEST",
    "IngestResult",
    "IssuedKey",
    "KeyPrincipal",
    "create_ingest_key",
    "ingest_events",
    "note_key_used",
    "principal_for_secret",
    "revoke_ingest_key",
    "rotate_ingest_key",
]
