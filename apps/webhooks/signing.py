"""Standard Webhooks signatures (https://www.standardwebhooks.com): secrets and headers.

A secret is `whsec_` + base64 of 32 random bytes; the HMAC key is those bytes. Each
attempt is signed as `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256, sent as
`v1,<base64>`; during a rotation's overlap the header carries one signature per secret,
space-separated, so receivers verifying with either secret accept it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, event_id: str, timestamp: int, body: str) -> str:
    signed = f"{event_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_in_use: list[str], event_id: str, timestamp: int, body: str) -> dict:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, event_id, timestamp, body) for secret in secrets_in_use
        ),
    }
