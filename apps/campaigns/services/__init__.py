"""Every write to campaigns and their contents, with the rules. Inputs arrive type-checked
(serializers); the business rules live here, one module per concern:

* `messages`: what is sent — target, delivery options and contents as FCM messages, with
  FCM's own rules (apps.integrations.firebase, never copied);
* `scheduling`: when — the schedule (apps.campaigns.recurrence) and the moves between draft,
  scheduled and cancelled, with the plan of deliveries (apps.notifications.planning);
* `editing`: create, update, duplicate, delete, and what may change in which state;
* `sending`: what the sending engine asks of campaigns.

Status changes go through apps.campaigns.state_machine only. Other apps and the API call
the names below.
"""

from apps.campaigns.services.editing import (
    create_campaign,
    delete_campaign,
    duplicate_campaign,
    update_campaign,
)
from apps.campaigns.services.messages import MAX_CONTENTS, localized_text, message_for
from apps.campaigns.services.scheduling import (
    cancel_campaign,
    schedule_campaign,
    stop_workspace_campaigns,
    unschedule_campaign,
)
from apps.campaigns.services.sending import (
    experiment_winner,
    is_sendable,
    lock_for_sending,
    mark_running,
    reason_not_sendable,
    settle,
)

__all__ = [
    "MAX_CONTENTS",
    "cancel_campaign",
    "create_campaign",
    "delete_campaign",
    "duplicate_campaign",
    "experiment_winner",
    "is_sendable",
    "localized_text",
    "lock_for_sending",
    "mark_running",
    "message_for",
    "reason_not_sendable",
    "schedule_campaign",
    "settle",
    "stop_workspace_campaigns",
    "unschedule_campaign",
    "update_campaign",
]
