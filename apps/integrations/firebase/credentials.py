"""Service-account JSON: what we accept, and what may be shown of it."""

import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from apps.common.errors import ValidationFailed

REQUIRED_FIELDS = (
    "type",
    "project_id",
    "private_key_id",
    "private_key",
    "client_email",
    "token_uri",
)
FIELD = "service_account"
REAL_FCM_BASE_URL = "https://fcm.googleapis.com"
# Google's OAuth2 token endpoints (the first is what current files carry).
GOOGLE_TOKEN_URIS = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
)
# Google issues 2048-bit keys; a much larger one would only make every token grant slow.
RSA_KEY_BITS = (2048, 4096)


def allowed_token_uris() -> tuple[str, ...]:
    """Where a service account may send its token grant.

    The URL comes from the uploaded file and the server POSTs to it, and the answer shows in
    `last_error`: any URL would let a workspace admin probe our network (SSRF). So only
    Google's endpoints — plus, when FCM_BASE_URL points at a stand-in (the fake FCM in
    embedded mode and tests), that stand-in's token endpoint.
    """
    base = settings.FCM_BASE_URL.rstrip("/")
    if base == REAL_FCM_BASE_URL:
        return GOOGLE_TOKEN_URIS
    return (*GOOGLE_TOKEN_URIS, f"{base}/token")


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(details={f"{FIELD}.{field}" if field else FIELD: [message]})


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise _invalid("private_key", "Not a PEM private key (or it is encrypted).") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _invalid("private_key", "The private key must be an RSA key.")
    low, high = RSA_KEY_BITS
    if not low <= key.key_size <= high:
        raise _invalid(
            "private_key", f"The RSA key has {key.key_size} bits; {low} to {high} are accepted."
        )
    return key


def key_fingerprint(key: rsa.RSAPrivateKey) -> str:
    """SHA-256 of the public key: identifies which key is configured without revealing it."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).hexdigest()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def parse_service_account(info, *, project_id: str) -> tuple[dict, str]:
    """Validate a service-account JSON for `project_id`; return (the account, fingerprint).
    Every failure is a 400 naming the field — and never echoes the secret.

    The file's text (a JSON string) is accepted as well as the object: pasting the
    downloaded file is the natural thing to do."""
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except json.JSONDecodeError as exc:
            # The decoder's message gives a position only, never the text around it.
            raise _invalid("", f"Not valid JSON (line {exc.lineno}, column {exc.colno}).") from None
    if not isinstance(info, dict):
        raise _invalid("", "Send the service-account JSON object as downloaded from Firebase.")
    missing = [
        name for name in REQUIRED_FIELDS if not isinstance(info.get(name), str) or not info[name]
    ]
    if missing:
        raise ValidationFailed(
            details={f"{FIELD}.{name}": ["This field is required."] for name in missing}
        )
    if info["type"] != "service_account":
        raise _invalid("type", "Must be 'service_account' (this is not a service-account key).")
    if "@" not in info["client_email"]:
        raise _invalid("client_email", "Not an email address.")
    if info["token_uri"].rstrip("/") not in allowed_token_uris():
        raise _invalid("token_uri", f"Must be Google's token endpoint, {GOOGLE_TOKEN_URIS[0]}.")
    if info["project_id"] != project_id:
        raise ValidationFailed(
            details={
                "project_id": [
                    f"The service account belongs to project '{info['project_id']}', "
                    f"not '{project_id}'."
                ]
            }
        )
    fingerprint = key_fingerprint(load_private_key(info["private_key"]))
    # Keep only what a service-account file holds: no stray fields ride along encrypted.
    known = (*REQUIRED_FIELDS, "client_id", "auth_uri", "auth_provider_x509_cert_url",
             "client_x509_cert_url", "universe_domain")  # fmt: skip
    return {name: info[name] for name in known if name in info}, fingerprint
