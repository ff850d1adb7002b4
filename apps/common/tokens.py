"""Secrets handed out once and stored only as a hash: invitation tokens, ingest keys.

The raw value is shown to its owner once and never stored; lookups hash what the caller
presents. SHA-256 without a salt is enough here: the values are 256 random bits, not
passwords, and a lookup must find the row by its hash.
"""

import hashlib
import secrets
from dataclasses import dataclass

TOKEN_BYTES = 32


@dataclass(frozen=True)
class IssuedSecret:
    value: str  # for its owner, once
    digest: str  # for the database


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_secret(prefix: str = "") -> IssuedSecret:
    value = prefix + secrets.token_urlsafe(TOKEN_BYTES)
    return IssuedSecret(value=value, digest=digest_of(value))
