import pytest

from apps.campaigns.errors import InvalidTransition
from apps.campaigns.models import Campaign, CampaignStatus
from apps.campaigns.state_machine import (
    TERMINAL_STATES,
    VALID_TRANSITIONS,
    allowed_transitions,
    transition,
)
from apps.common.models import AuditLog

S = CampaignStatus


def test_the_spec_transitions_are_all_present():
    spec = {"draft": ["scheduled"], "scheduled": ["running", "cancelled"], "running": ["completed"]}
    for source, targets in spec.items():
        assert set(targets) <= VALID_TRANSITIONS[source]
    assert S.CANCELLED in VALID_TRANSITIONS[S.DRAFT]  # API.md: draft|scheduled -> cancelled


def test_only_the_documented_extensions_are_added():
    spec_and_api = {
        (S.DRAFT, S.SCHEDULED),
        (S.DRAFT, S.CANCELLED),
        (S.SCHEDULED, S.RUNNING),
        (S.SCHEDULED, S.CANCELLED),
        (S.RUNNING, S.COMPLETED),
    }
    every = {(a, b) for a, targets in VALID_TRANSITIONS.items() for b in targets}
    assert every - spec_and_api == {
        (S.SCHEDULED, S.DRAFT),
        (S.SCHEDULED, S.COMPLETED),
        (S.SCHEDULED, S.FAILED),
        (S.RUNNING, S.SCHEDULED),
        (S.RUNNING, S.FAILED),
        # Approvals (send policies): a state of its own between draft and scheduled.
        (S.DRAFT, S.PENDING_APPROVAL),
        (S.PENDING_APPROVAL, S.SCHEDULED),
        (S.PENDING_APPROVAL, S.DRAFT),
        (S.PENDING_APPROVAL, S.CANCELLED),
    }
    assert set(VALID_TRANSITIONS) == set(S.values)
    assert {S.COMPLETED, S.CANCELLED, S.FAILED} == TERMINAL_STATES


def test_transition_updates_the_row_and_writes_an_audit_record(make_campaign, owner):
    campaign = make_campaign()
    transition(campaign, S.CANCELLED, actor=owner, reason="test")
    assert campaign.status == S.CANCELLED
    assert Campaign.objects.get(pk=campaign.pk).status == S.CANCELLED
    entry = AuditLog.objects.filter(action="campaign.transition", target_id=str(campaign.pk)).get()
    assert entry.metadata["from"] == "draft" and entry.metadata["to"] == "cancelled"
    assert entry.actor == owner and entry.workspace == campaign.workspace


def test_an_invalid_transition_is_refused_with_the_allowed_ones(make_campaign):
    campaign = make_campaign()
    with pytest.raises(InvalidTransition) as excinfo:
        transition(campaign, S.COMPLETED)
    assert excinfo.value.details == {
        "from": "draft",
        "to": "completed",
        "allowed": allowed_transitions(S.DRAFT),
    }
    assert excinfo.value.status_code == 409
    assert Campaign.objects.get(pk=campaign.pk).status == S.DRAFT


def test_a_stale_instance_loses_to_the_real_state(make_campaign):
    campaign = make_campaign()
    stale = Campaign.objects.get(pk=campaign.pk)
    transition(campaign, S.CANCELLED)
    with pytest.raises(InvalidTransition) as excinfo:
        transition(stale, S.SCHEDULED)  # believed draft, is cancelled: conditional update fails
    assert excinfo.value.details["from"] == "cancelled"
    assert excinfo.value.details["allowed"] == []
    assert stale.status == S.CANCELLED
    assert Campaign.objects.get(pk=campaign.pk).status == S.CANCELLED
    assert AuditLog.objects.filter(action="campaign.transition").count() == 1


def test_fields_are_set_in_the_same_update(make_campaign, tomorrow):
    campaign = make_campaign()
    transition(campaign, S.SCHEDULED, fields={"next_run_at": tomorrow})
    assert Campaign.objects.get(pk=campaign.pk).next_run_at == tomorrow
