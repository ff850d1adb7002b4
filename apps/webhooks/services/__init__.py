"""Every write of webhooks: endpoints (`endpoints`), the outbox other apps write events to
(`outbox`), and delivery (`delivery`). Other apps call the outbox functions named here, one
call at the place of each change."""

from apps.webhooks.services.delivery import deliver_endpoint, purge_old, sweep
from apps.webhooks.services.endpoints import (
    IssuedEndpoint,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    redeliver,
    rotate_secret,
    send_test,
    update_endpoint,
)
from apps.webhooks.services.outbox import (
    EVENT_TYPES,
    Event,
    campaign_changed,
    delivery_finished,
    emit,
    emit_many,
    experiment_decided,
    firebase_connection_failed,
)

__all__ = [
    "EVENT_TYPES",
    "Event",
    "IssuedEndpoint",
    "campaign_changed",
    "create_endpoint",
    "delete_endpoint",
    "deliver_endpoint",
    "delivery_finished",
    "disable_endpoint",
    "emit",
    "emit_many",
    "enable_endpoint",
    "experiment_decided",
    "firebase_connection_failed",
    "purge_old",
    "redeliver",
    "rotate_secret",
    "send_test",
    "sweep",
    "update_endpoint",
]
