"""Helpers for other apps' tests: a connected Firebase config without any network."""

import json
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.integrations.firebase import crypto
from apps.integrations.firebase.credentials import key_fingerprint
from apps.integrations.firebase.models import FirebaseConfig


@lru_cache(maxsize=1)
def _test_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_info(project_id: str, token_uri: str, key=None) -> dict:
    key = key or _test_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "test-key-1",
        "private_key": pem,
        "client_email": f"pushpilot-test@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


def make_firebase_config(
    workspace,
    *,
    status: str = "connected",
    project_id: str = "demo-project",
    token_uri: str = "http://127.0.0.1:9/token",  # noqa: S107 (a URL, nothing listens there)
    info: dict | None = None,
) -> FirebaseConfig:
    """A stored config (encrypted like the real thing) with the given status."""
    info = info or service_account_info(project_id, token_uri)
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    return FirebaseConfig.objects.create(
        workspace=workspace,
        project_id=info["project_id"],
        client_email=info["client_email"],
        key_fingerprint=key_fingerprint(key),
        encrypted_credentials=crypto.encrypt(json.dumps(info)),
        status=status,
    )
