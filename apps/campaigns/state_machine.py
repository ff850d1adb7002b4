"""The campaign state machine: the only code that changes `Campaign.status`.

    from        to                      who / why
    draft       scheduled               schedule (validated, the first occurrences planned)
    draft       cancelled               cancel
    draft       pending_approval [added] schedule, when the audience is over the workspace's
                                        approval threshold and the caller is not an admin
    pending_approval scheduled [added]  approve (an admin; the kept schedule checked again)
    pending_approval draft     [added]  reject (an admin, with a reason) or unschedule
    pending_approval cancelled [added]  cancel
    scheduled   running                 the sending engine, when a delivery starts
    scheduled   cancelled               cancel (unsent deliveries cancelled, same transaction)
    scheduled   draft        [added]    unschedule, to edit (the unsent plan withdrawn)
    scheduled   completed    [added]    the engine: the plan ended without running (skipped)
    scheduled   failed       [added]    the engine: a one-off run skipped (missed, say)
    running     completed               the engine, after the last occurrence
    running     scheduled    [added]    the engine, between occurrences of a recurring rule
    running     failed       [added]    the engine, when a run could not deliver

The spec's table (seed guide §7.4) is draft→scheduled, scheduled→running|cancelled,
running→completed. API.md adds draft→cancelled. Extensions, each because the product
needs it:

* **scheduled → draft** ("unschedule"): contents, target, delivery options and schedule
  are editable only in draft; a scheduled campaign is taken back to draft to be edited
  (its pending jobs are removed in the same transaction) and scheduled again.
* **pending_approval** (send policies, README "Send policies"): a campaign whose audience
  estimate is over the workspace's `approval_threshold` waits in a state of its own, with
  its schedule stored, until an admin approves it (→ scheduled, planned then) or rejects
  it (→ draft). It is not editable there (CAMPAIGN_LOCKED): unschedule or cancel it.
* **running → scheduled**: a recurring campaign goes back to scheduled between
  occurrences (its future is already planned); after the last occurrence it goes
  running → completed instead (DESIGN.md §5.7).
* **running → failed**: a run that could not deliver (every send failed permanently)
  ends in `failed` instead of pretending to be `completed`.
* **scheduled → completed | failed**: the last run was skipped without starting (it was
  missed by more than the catch-up window): a recurring campaign has completed its plan, a
  one-off campaign failed.

The engine never picks a transition itself: the campaign's status follows from its
deliveries (apps.campaigns.services.settle, README "States").

`completed`, `cancelled` and `failed` are terminal; duplicate a campaign to run it again.
A running campaign cannot be cancelled: it is mid-send for seconds; cancel it when it is
back to scheduled (a recurring one) — the engine checks the status before each delivery.

Every transition is one conditional UPDATE (`WHERE id = … AND status = <from>`), so two
racing requests cannot both succeed, plus an audit record in the same transaction.
An invalid transition (or one that lost the race) is 409 INVALID_TRANSITION with
`details: {from, to, allowed}`.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.campaigns.errors import InvalidTransition
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common import audit
from apps.webhooks import services as webhooks

S = CampaignStatus

VALID_TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.CANCELLED, S.PENDING_APPROVAL}),
    S.PENDING_APPROVAL: frozenset({S.SCHEDULED, S.DRAFT, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.RUNNING, S.CANCELLED, S.DRAFT, S.COMPLETED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.SCHEDULED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}
TERMINAL_STATES = frozenset(state for state, targets in VALID_TRANSITIONS.items() if not targets)


def allowed_transitions(current: str) -> list[str]:
    return sorted(VALID_TRANSITIONS.get(current, ()))


def can_transition(current: str, target: str) -> bool:
    return target in VALID_TRANSITIONS.get(current, ())


@transaction.atomic
def transition(
    campaign: Campaign,
    to: str,
    *,
    actor=None,
    reason: str = "",
    fields: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Campaign:
    """Move `campaign` from its current status to `to`, setting `fields` in the same UPDATE.

    `campaign.status` is the state the caller believes it is in; if the row is no longer in
    that state (another request won), the transition is refused with the row's real state.
    The instance is updated in place and returned.
    """
    current = campaign.status
    if not can_transition(current, to):
        raise InvalidTransition(current, to, allowed_transitions(current))

    changes = dict(fields or {})
    now = timezone.now()
    updated = Campaign.objects.filter(pk=campaign.pk, status=current).update(
        status=to, updated_at=now, **changes
    )
    if updated != 1:
        actual = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        if actual is None:  # deleted meanwhile
            raise InvalidTransition(current, to, [])
        campaign.status = actual
        raise InvalidTransition(actual, to, allowed_transitions(actual))

    campaign.status = to
    campaign.updated_at = now
    for name, value in changes.items():
        setattr(campaign, name, value)
    audit.record(
        "campaign.transition",
        actor=actor,
        workspace=campaign.workspace,
        target=campaign,
        metadata={"from": current, "to": to, "reason": reason, **(metadata or {})},
    )
    webhooks.campaign_changed([campaign], previous=current, status=to, reason=reason)
    return campaign


def transition_many(campaigns, to: str, *, reason: str = "", now=None) -> None:
    """Move every campaign of `campaigns` (all in one current status, their rows locked by
    the caller) to `to`: one UPDATE and one audit insert, for the sending engine's batches
    (inside apps.common.audit.engine_batch, entries of the batch's summary rows)."""
    campaigns = list(campaigns)
    if not campaigns:
        return
    current = campaigns[0].status
    if any(campaign.status != current for campaign in campaigns):
        raise ValueError("transition_many moves campaigns that share one status")
    if not can_transition(current, to):
        raise InvalidTransition(current, to, allowed_transitions(current))
    now = now or timezone.now()
    ids = [campaign.pk for campaign in campaigns]
    updated = Campaign.objects.filter(pk__in=ids, status=current).update(status=to, updated_at=now)
    if updated != len(ids):  # the caller's locks make this impossible; never write blind
        raise InvalidTransition(current, to, allowed_transitions(current))
    for campaign in campaigns:
        campaign.status, campaign.updated_at = to, now
    audit.record_many(
        audit.Entry(
            "campaign.transition",
            workspace_id=campaign.workspace_id,
            target=campaign,
            metadata={"from": current, "to": to, "reason": reason},
        )
        for campaign in campaigns
    )
    webhooks.campaign_changed(campaigns, previous=current, status=to, reason=reason)
