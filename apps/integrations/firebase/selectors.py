import json

from apps.integrations.firebase import crypto
from apps.integrations.firebase.models import ConnectionStatus, FirebaseConfig


def get_config(workspace) -> FirebaseConfig | None:
    return FirebaseConfig.objects.filter(workspace=workspace).first()


def firebase_is_connected(workspace) -> bool:
    """Credentials are stored and the last check of them succeeded."""
    return FirebaseConfig.objects.filter(
        workspace=workspace, status=ConnectionStatus.CONNECTED
    ).exists()


def service_account_of(config: FirebaseConfig) -> dict:
    """The decrypted service account. Keep it in memory only, never log or return it."""
    return json.loads(crypto.decrypt(config.encrypted_credentials))
