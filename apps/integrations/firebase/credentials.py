"""Service-account JSON: what we accept, and what may be shown of it."""

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(details={f"{FIELD}.{field}" if field else FIELD: [message]})


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise _invalid("private_key", "Not a PEM private key (or it is encrypted).") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _invalid("private_key", "The private key must be an RSA key.")
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
    Every failure is a 400 naming the field — and never echoes the secret."""
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
    if not info["token_uri"].startswith(("https://", "http://")):
        raise _invalid("token_uri", "Must be an http(s) URL.")
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
