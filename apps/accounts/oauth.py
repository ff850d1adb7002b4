"""Verification of Google and Apple id_tokens. Returns trusted claims or raises
`OAuthTokenInvalid`; knows nothing about our users.

Keys are fetched from the providers' published sets and cached per process: Google's
certificates for as long as its Cache-Control allows, Apple's JWKS through PyJWKClient.
"""

import re
import threading
import time
from dataclasses import dataclass

import httpx
import jwt
from django.conf import settings
from google.auth import exceptions as google_exceptions
from google.auth import jwt as google_jwt

from apps.accounts.errors import OAuthProviderNotConfigured, OAuthTokenInvalid

GOOGLE_ISSUERS = {"accounts.google.com", "https://accounts.google.com"}
CLOCK_SKEW_SECONDS = 10
MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True)
class Identity:
    provider: str
    subject: str
    email: str
    name: str


def _require_verified_email(claims: dict) -> str:
    email = claims.get("email")
    # Apple sends email_verified as the string "true"; Google as a boolean.
    if not email or str(claims.get("email_verified")).lower() != "true":
        raise OAuthTokenInvalid("The identity token does not carry a verified email address.")
    return email


# --- Google -------------------------------------------------------------------------------------
class _GoogleCerts:
    """Google's signing certificates, refreshed when their max-age runs out."""

    def __init__(self):
        self._lock = threading.Lock()
        self._certs: dict | None = None
        self._expires = 0.0

    def get(self) -> dict:
        with self._lock:
            if self._certs is None or time.monotonic() >= self._expires:
                response = httpx.get(settings.GOOGLE_CERTS_URL, timeout=5)
                response.raise_for_status()
                self._certs = response.json()
                match = MAX_AGE.search(response.headers.get("cache-control", ""))
                self._expires = time.monotonic() + (int(match.group(1)) if match else 300)
            return self._certs

    def clear(self) -> None:
        with self._lock:
            self._certs, self._expires = None, 0.0


google_certs = _GoogleCerts()


def verify_google(id_token: str) -> Identity:
    if not settings.GOOGLE_CLIENT_IDS:
        raise OAuthProviderNotConfigured()
    try:
        certs = google_certs.get()
    except httpx.HTTPError:
        raise OAuthTokenInvalid("Google's signing keys could not be fetched; try again.") from None
    try:
        claims = google_jwt.decode(
            id_token,
            certs=certs,
            audience=settings.GOOGLE_CLIENT_IDS,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, google_exceptions.GoogleAuthError) as exc:
        raise OAuthTokenInvalid(f"Invalid Google id_token: {_reason(exc)}") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise OAuthTokenInvalid("Invalid Google id_token: wrong issuer.")
    return Identity(
        "google", str(claims["sub"]), _require_verified_email(claims), claims.get("name", "")
    )


# --- Apple --------------------------------------------------------------------------------------
_apple_client: jwt.PyJWKClient | None = None
_apple_lock = threading.Lock()


def apple_jwks() -> jwt.PyJWKClient:
    global _apple_client
    with _apple_lock:
        if _apple_client is None or _apple_client.uri != settings.APPLE_JWKS_URL:
            _apple_client = jwt.PyJWKClient(
                settings.APPLE_JWKS_URL, cache_keys=True, lifespan=3600, timeout=5
            )
        return _apple_client


def verify_apple(id_token: str) -> Identity:
    if not settings.APPLE_CLIENT_IDS:
        raise OAuthProviderNotConfigured()
    try:
        signing_key = apple_jwks().get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token,
            signing_key.key,
            algorithms=["RS256"],  # never what the token's header asks for
            audience=settings.APPLE_CLIENT_IDS,
            issuer=settings.APPLE_ISSUER,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWKClientConnectionError:
        raise OAuthTokenInvalid("Apple's signing keys could not be fetched; try again.") from None
    except jwt.PyJWTError as exc:
        raise OAuthTokenInvalid(f"Invalid Apple id_token: {_reason(exc)}") from None
    return Identity("apple", str(claims["sub"]), _require_verified_email(claims), "")


def _reason(exc: Exception) -> str:
    # Library messages name the failed check (expired, audience, signature); keep them short.
    return str(exc).split("\n")[0][:200] or type(exc).__name__
