"""Every write to campaigns and their contents, with the rules. Inputs arrive type-checked
(serializers); the business rules live here, one module per concern:

* `messages`: what is sent — target, delivery options and contents as FCM messages, with
  FCM's own rules (apps.integrations.firebase, never copied);
* `scheduling`: when — the schedule (apps.campaigns.recurrence) and the moves between draft,
  scheduled and cancelled, with the plan of deliveries (apps.notifications.planning);
* `editing`: create, update, duplicate, delete, and what may change in which state;
* `sending`: what the sending engine asks of campaigns;
* `policies`: the workspace's send policies, and their checks when a campaign is scheduled
  (approvals are moves of `scheduling`).

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
from apps.campaigns.services.policies import update_policy
from apps.campaigns.services.scheduling import (
    approve_campaign,
    cancel_campaign,
    reject_campaign,
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
    "approve_campaign",
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
    "reject_campaign",
    "schedule_campaign",
    "settle",
    "stop_workspace_campaigns",
    "unschedule_campaign",
    "update_campaign",
    "update_policy",
]
