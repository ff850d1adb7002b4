"""Device writes: `registry` (register, unregister, language changes, erasure) and `sync`
(FCM's topic subscriptions follow the registry). Other apps and the API call the names below."""

from apps.devices.services.registry import (
    MAX_DEVICES_PER_REQUEST,
    TOKEN_PREFIX_LENGTH,
    RegisterResult,
    Registration,
    erase_workspace,
    register_batch,
    register_one,
    remap_languages,
    unregister,
)
from apps.devices.services.sync import requeue_waiting, sync_workspace

__all__ = [
    "MAX_DEVICES_PER_REQUEST",
    "TOKEN_PREFIX_LENGTH",
    "RegisterResult",
    "Registration",
    "erase_workspace",
    "register_batch",
    "register_one",
    "remap_languages",
    "requeue_waiting",
    "sync_workspace",
    "unregister",
]
