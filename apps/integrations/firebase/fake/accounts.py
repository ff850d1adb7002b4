"""Demo service accounts: the same JSON shape the Firebase console downloads, with a fresh key.

The key is real (RSA 2048, PKCS8 PEM) so that google-auth and our own client can sign token
grants with it; only the fake FCM server will ever trust it.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_TOKEN_URI = "http://127.0.0.1:9099/token"


def make_demo_service_account(
    project_id: str = "demo-project", token_uri: str = DEFAULT_TOKEN_URI
) -> dict:
    """Return a complete service-account JSON dict for ``project_id`` with a new private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")
    # A distinct account per call: the fake trusts one key per client_email, so two demo
    # accounts for the same project (two workspaces on a laptop) must not displace each other.
    client_email = f"pushpilot-demo-{secrets.token_hex(3)}@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        # Google's key ids are 40 hex digits; client ids are 21-digit numbers.
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email, safe="")
        ),
        "universe_domain": "googleapis.com",
    }
