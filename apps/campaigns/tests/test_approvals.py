"""Send policies over HTTP: the policy resource (roles, validation, audit) and approvals —
a campaign over the workspace's approval threshold waits in `pending_approval` for an
admin, who approves (scheduled with the kept schedule, re-checked) or rejects (draft)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.campaigns.models import Campaign, SendPolicy
from apps.common.models import AuditLog
from apps.devices.services import register_one
from apps.notifications.models import Delivery

pytestmark = pytest.mark.django_db

POLICY_URL = "/api/v1/send-policy"
URL = "/api/v1/campaigns"


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def devices(workspace, n: int, topic="news"):
    for i in range(n):
        register_one(workspace_id=workspace.pk, payload={
            "token": f"{i:04d}-device:APA91b" + "d" * 60, "time_zone": "UTC", "language": "en",
            "platform": "android", "topics": [topic]})  # fmt: skip


@pytest.fixture
def admin_api(client_for, make_user, add_member, workspace):
    user = make_user(email="admin@example.com")
    add_member(workspace, user, "admin")
    return client_for(user, workspace)


@pytest.fixture
def big_campaign(connected, make_campaign, tomorrow):
    """A draft to `news`, which 3 devices are in, with the workspace's threshold at 2."""
    devices(connected, 3)
    SendPolicy.objects.create(workspace=connected, approval_threshold=2)
    return make_campaign(scheduled_at=tomorrow)


# --- the policy resource ----------------------------------------------------------------------
def test_admins_set_the_policy_members_read_it_and_it_is_audited(api, member_api, workspace):
    assert member_api.get(POLICY_URL).json()["quiet_hours_start"] is None
    body = {"quiet_hours_start": "21:00:00", "quiet_hours_end": "08:00:00",
            "quiet_hours_mode": "recipient", "frequency_cap_max_sends": 3,
            "frequency_cap_window_hours": 24, "rate_limit_per_minute": 600,
            "approval_threshold": 1000}  # fmt: skip
    refused = member_api.put(POLICY_URL, body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "PERMISSION_DENIED"
    response = api.put(POLICY_URL, body, format="json")
    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in body} == body
    assert member_api.get(POLICY_URL).json()["approval_threshold"] == 1000
    entry = AuditLog.objects.get(action="send_policy.updated")
    assert entry.workspace == workspace and entry.metadata["after"]["quiet_hours_start"] == "21:00"
    assert "rate_limit_per_minute" in entry.metadata["changed"]
    # PUT replaces: what is left out is cleared.
    assert (
        api.put(POLICY_URL, {"rate_limit_per_minute": 10}, format="json").json()[
            "quiet_hours_start"
        ]
        is None
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quiet_hours_start": "21:00"}, "quiet_hours_end"),
        ({"quiet_hours_start": "21:00", "quiet_hours_end": "21:00"}, "quiet_hours_end"),
        ({"frequency_cap_window_hours": 24}, "frequency_cap_max_sends"),
        (
            {"frequency_cap_max_sends": 0, "frequency_cap_window_hours": 24},
            "frequency_cap_max_sends",
        ),
        ({"quiet_hours_start": "25:00", "quiet_hours_end": "08:00"}, "quiet_hours_start"),
        ({"quiet_hours_start": "21:00+01:00", "quiet_hours_end": "08:00"}, "quiet_hours_start"),
        ({"quiet_hours_start": "21:00", "quiet_hours_end": "08:00:00.5"}, "quiet_hours_end"),
        ({"quiet_hours_start": 2100, "quiet_hours_end": "08:00"}, "quiet_hours_start"),
        ({"quiet_hours_mode": "moon"}, "quiet_hours_mode"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field(api, body, field):
    response = api.put(POLICY_URL, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]


def test_only_admins_send_through_quiet_hours(api, member_api):
    body = {"name": "Receipt", "target": {"topic": "orders"}, "quiet_hours": "ignore",
            "contents": [{"title": "Your receipt"}]}  # fmt: skip
    refused = member_api.post(URL, body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "PERMISSION_DENIED"
    created = api.post(URL, body, format="json")
    assert created.status_code == 201 and created.json()["quiet_hours"] == "ignore"
    assert member_api.post(URL, {**body, "quiet_hours": "skip"}, format="json").status_code == 201


# --- approvals --------------------------------------------------------------------------------
def test_a_members_schedule_over_the_threshold_waits_for_an_admin(
    member_api, admin_api, big_campaign, tomorrow
):
    later = tomorrow + timedelta(hours=2)
    response = member_api.post(f"{URL}/{big_campaign.pk}/schedule", {"scheduled_at": iso(later)})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == "pending_approval"
    assert data["scheduled_at"] == iso(later)  # the requested schedule, kept
    assert data["approval_requested_by"] is not None and data["approved_by"] is None
    assert not Delivery.objects.filter(campaign=big_campaign).exists()  # nothing planned yet
    preview = member_api.get(
        f"{URL}/{big_campaign.pk}/deliveries",
        {"from": iso(tomorrow), "to": iso(tomorrow + timedelta(days=1))},
    )
    assert [(r["run_at"], r["status"]) for r in preview.json()["deliveries"]] == [
        (iso(later), "unplanned")
    ]  # fmt: skip
    requested = AuditLog.objects.get(action="campaign.approval_requested")
    assert requested.metadata["audience"] == 3 and requested.metadata["threshold"] == 2

    # Pending: not editable, not approvable by its member, not schedulable again.
    locked = member_api.patch(f"{URL}/{big_campaign.pk}", {"target": {"topic": "x"}},
                              format="json")  # fmt: skip
    assert locked.json()["error"]["code"] == "CAMPAIGN_LOCKED"
    assert member_api.post(f"{URL}/{big_campaign.pk}/approve").status_code == 403
    again = member_api.post(f"{URL}/{big_campaign.pk}/schedule", {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "INVALID_TRANSITION"

    approved = admin_api.post(f"{URL}/{big_campaign.pk}/approve")
    assert approved.status_code == 200, approved.content
    body = approved.json()
    assert body["status"] == "scheduled" and body["next_run_at"] == iso(later)
    assert body["approved_by"] is not None and body["approved_at"] is not None
    assert Delivery.objects.get(campaign=big_campaign).run_at == later
    assert AuditLog.objects.filter(action="campaign.approved", target_id=str(big_campaign.pk))
    assert admin_api.post(f"{URL}/{big_campaign.pk}/approve").status_code == 409


def test_rejection_returns_it_to_draft_with_the_reason(member_api, admin_api, big_campaign):
    member_api.post(f"{URL}/{big_campaign.pk}/schedule", {})
    assert member_api.post(f"{URL}/{big_campaign.pk}/reject", {"reason": "no"}).status_code == 403
    response = admin_api.post(f"{URL}/{big_campaign.pk}/reject", {"reason": "Too broad"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "draft"
    assert response.json()["rejection_reason"] == "Too broad"
    entry = AuditLog.objects.get(action="campaign.rejected")
    assert entry.metadata["reason"] == "Too broad"
    assert admin_api.post(f"{URL}/{big_campaign.pk}/reject", {}).status_code == 409


def test_approval_checks_the_kept_schedule_again(member_api, admin_api, big_campaign):
    soon = timezone.now() + timedelta(seconds=2)
    assert (
        member_api.post(f"{URL}/{big_campaign.pk}/schedule", {"scheduled_at": iso(soon)}).json()[
            "status"
        ]
        == "pending_approval"
    )
    Campaign.objects.filter(pk=big_campaign.pk).update(
        scheduled_at=timezone.now() - timedelta(minutes=1),
        scheduled_local=(timezone.now() - timedelta(minutes=1)).replace(tzinfo=None).isoformat(),
    )  # the approval came too late: the first run has passed
    response = admin_api.post(f"{URL}/{big_campaign.pk}/approve")
    assert response.status_code == 400 and "scheduled_at" in response.json()["error"]["details"]
    assert Campaign.objects.get(pk=big_campaign.pk).status == "pending_approval"


def test_an_admin_schedules_directly_and_is_recorded_as_approver(admin_api, big_campaign):
    response = admin_api.post(f"{URL}/{big_campaign.pk}/schedule", {})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "scheduled"
    assert response.json()["approved_by"] is not None


def test_under_the_threshold_a_member_schedules_directly(member_api, big_campaign):
    SendPolicy.objects.filter(workspace=big_campaign.workspace).update(approval_threshold=3)
    response = member_api.post(f"{URL}/{big_campaign.pk}/schedule", {})
    assert response.json()["status"] == "scheduled" and response.json()["approved_by"] is None


def test_a_pending_campaign_can_be_withdrawn_or_cancelled(member_api, big_campaign, make_campaign):
    member_api.post(f"{URL}/{big_campaign.pk}/schedule", {})
    assert member_api.post(f"{URL}/{big_campaign.pk}/unschedule").json()["status"] == "draft"
    member_api.post(f"{URL}/{big_campaign.pk}/schedule", {})
    assert member_api.post(f"{URL}/{big_campaign.pk}/cancel").json()["status"] == "cancelled"
