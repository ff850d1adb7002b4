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


def connected_config(workspace_id) -> FirebaseConfig | None:
    return FirebaseConfig.objects.filter(
        workspace_id=workspace_id, status=ConnectionStatus.CONNECTED
    ).first()


def connected_workspace_ids(workspace_ids) -> set:
    """Those of these workspaces whose Firebase connection is working."""
    return set(
        FirebaseConfig.objects.filter(
            workspace_id__in=workspace_ids, status=ConnectionStatus.CONNECTED
        ).values_list("workspace_id", flat=True)
    )


def service_account_of(config: FirebaseConfig) -> dict:
    """The decrypted service account. Keep it in memory only, never log or return it."""
    return json.loads(crypto.decrypt(config.encrypted_credentials))


def service_accounts_for(workspace_ids) -> dict:
    """The decrypted service account of each of these workspaces that has one stored, by
    workspace id (one query). Keep them in memory only."""
    return {
        config.workspace_id: service_account_of(config)
        for config in FirebaseConfig.objects.filter(workspace_id__in=workspace_ids)
    }
