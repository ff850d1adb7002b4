"""Connecting a workspace to Firebase, testing the connection, rotating encryption keys.

The service account never leaves this module in clear except into the FCM client: audit
records, logs and errors carry only the project, the client email and the key fingerprint.
"""

import json

from django.db import transaction
from django.utils import timezone

from apps.common import audit
from apps.common.logging import get_logger
from apps.integrations.firebase import crypto
from apps.integrations.firebase.client import FcmClient, FcmError
from apps.integrations.firebase.credentials import parse_service_account
from apps.integrations.firebase.errors import FirebaseNotConnected
from apps.integrations.firebase.messages import PushContent, build_message
from apps.integrations.firebase.models import ConnectionStatus, FirebaseConfig
from apps.integrations.firebase.selectors import get_config, service_account_of
from apps.webhooks import services as webhooks

logger = get_logger("pushpilot.firebase")

TEST_TOPIC = "pushpilot-test"


def _public(config: FirebaseConfig) -> dict:
    return {
        "project_id": config.project_id,
        "client_email": config.client_email,
        "key_fingerprint": config.key_fingerprint,
    }


def save_config(*, workspace, actor, project_id: str, service_account: dict) -> FirebaseConfig:
    """Store (encrypted) and verify the credentials by obtaining an access token. A refused
    account is still stored, with status `error` and the reason in `last_error`."""
    info, fingerprint = parse_service_account(service_account, project_id=project_id)
    with transaction.atomic():
        config, created = FirebaseConfig.objects.update_or_create(
            workspace=workspace,
            defaults={
                "project_id": project_id,
                "client_email": info["client_email"],
                "key_fingerprint": fingerprint,
                "encrypted_credentials": crypto.encrypt(json.dumps(info)),
                "status": ConnectionStatus.UNTESTED,
                "last_error": "",
                "last_tested_at": None,
            },
        )
        audit.record(
            "firebase.connected" if created else "firebase.updated",
            actor=actor,
            workspace=workspace,
            target=config,
            metadata=_public(config),
        )
    try:
        FcmClient(info).fetch_token()
    except FcmError as exc:
        return _record_outcome(config, error=exc)
    return _record_outcome(config, error=None)


def _record_outcome(config: FirebaseConfig, *, error: FcmError | None) -> FirebaseConfig:
    config.status = ConnectionStatus.ERROR if error else ConnectionStatus.CONNECTED
    config.last_error = str(error)[:1000] if error else ""
    config.last_tested_at = timezone.now()
    # Only onto the credentials that were checked: a PUT that replaced them meanwhile keeps
    # its own outcome (conditional update, not read-check-write).
    with transaction.atomic():  # the status and its webhook event commit together
        changed = FirebaseConfig.objects.filter(
            pk=config.pk, encrypted_credentials=config.encrypted_credentials
        ).update(
            status=config.status,
            last_error=config.last_error,
            last_tested_at=config.last_tested_at,
            updated_at=timezone.now(),
        )
        if error and changed:
            webhooks.firebase_connection_failed(
                config, code=error.error_code, message=error.message
            )
    if error:
        logger.warning(
            "firebase_check_failed", project_id=config.project_id, error=error.error_code
        )
    return config


# FCM refusals that say the connection is broken (the account, its permissions, the
# project's APNs or web push credentials), not the message: the engine reports them here.
CONNECTION_ERRORS = frozenset(
    {"AUTH_FAILED", "UNAUTHENTICATED", "PERMISSION_DENIED", "SENDER_ID_MISMATCH",
     "THIRD_PARTY_AUTH_ERROR"}
)  # fmt: skip


def sends_refused(errors: dict) -> int:
    """Sends the engine had refused for a connection error ({workspace id: (code, message)}):
    each connection not already marked `error` becomes so — once, by a conditional update —
    with its firebase.connection_failed event, in the caller's transaction. Returns how many
    connections changed."""
    changed = 0
    for workspace_id, (code, message) in errors.items():
        marked = (
            FirebaseConfig.objects.filter(workspace_id=workspace_id)
            .exclude(status=ConnectionStatus.ERROR)
            .update(
                status=ConnectionStatus.ERROR,
                last_error=f"{code}: {message}"[:1000],
                updated_at=timezone.now(),
            )
        )
        if marked:
            config = FirebaseConfig.objects.get(workspace_id=workspace_id)
            webhooks.firebase_connection_failed(config, code=code, message=message)
            logger.warning("firebase_sends_refused", project_id=config.project_id, error=code)
            changed += 1
    return changed


@transaction.atomic
def delete_config(*, workspace, actor) -> None:
    config = get_config(workspace)
    if config is None:
        return
    config.delete()
    audit.record(
        "firebase.disconnected",
        actor=actor,
        workspace=workspace,
        target_type="firebase.firebaseconfig",
        target_id=str(config.pk),
        metadata=_public(config),
    )


def send_test(
    *, workspace, actor, title: str, body: str, validate_only: bool, topic: str | None = None
) -> dict:
    """Send (or only validate) a test notification; store the outcome on the config."""
    config = get_config(workspace)
    if config is None:
        raise FirebaseNotConnected()
    message = build_message(content=PushContent(title=title, body=body), topic=topic or TEST_TOPIC)
    try:
        name = FcmClient(service_account_of(config)).send(message, validate_only=validate_only)
    except FcmError as exc:
        _record_outcome(config, error=exc)
        outcome = {"ok": False, "error": {"code": exc.error_code, "message": exc.message}}
    else:
        _record_outcome(config, error=None)
        outcome = {"ok": True, "message_id": name, "validate_only": validate_only}
    with transaction.atomic():
        audit.record(
            "firebase.tested",
            actor=actor,
            workspace=workspace,
            target=config,
            metadata={
                "ok": outcome["ok"],
                "topic": message["topic"],
                "validate_only": validate_only,
            },
        )
    return outcome


def rotate_encryption() -> tuple[int, int]:
    """Re-encrypt every stored service account with the newest key.
    Returns (rotated, already current)."""
    rotated = current = 0
    for config in FirebaseConfig.objects.only("pk", "encrypted_credentials").iterator():
        if crypto.encrypted_with_newest_key(config.encrypted_credentials):
            current += 1
            continue
        FirebaseConfig.objects.filter(
            pk=config.pk, encrypted_credentials=config.encrypted_credentials
        ).update(encrypted_credentials=crypto.rotate(config.encrypted_credentials))
        rotated += 1
    return rotated, current
