"""Secrets at rest: MultiFernet over FIELD_ENCRYPTION_KEYS (first key encrypts, all decrypt).

Without keys (embedded mode only; settings refuse it elsewhere) a key is derived from
SECRET_KEY, and the log says so once per process.
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.common.logging import get_logger

logger = get_logger("pushpilot.crypto")


class DecryptionFailed(Exception):
    """No configured key opens this value (a key was removed too early, or data is corrupt)."""


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(b"pushpilot-field-encryption:" + settings.SECRET_KEY.encode())
        keys = [base64.urlsafe_b64encode(digest.digest()).decode()]
        logger.warning(
            "field_encryption_key_derived",
            detail="FIELD_ENCRYPTION_KEYS is not set: using a key derived from SECRET_KEY "
            "(embedded mode only; set FIELD_ENCRYPTION_KEYS for any real deployment).",
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64-encoded bytes)."
        ) from None


def reset_keys() -> None:
    """Forget the cached keys (after settings change: tests, key rotation)."""
    _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed(
            "The stored secret cannot be decrypted with the configured keys."
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt with the newest key (a no-op in meaning, new ciphertext)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed(
            "The stored secret cannot be decrypted with the configured keys."
        ) from None


def encrypted_with_newest_key(token: str) -> bool:
    """Whether the newest key alone opens this token (nothing to rotate)."""
    newest = _fernet()._fernets[0]
    try:
        newest.decrypt(token.encode())
        return True
    except InvalidToken:
        return False
