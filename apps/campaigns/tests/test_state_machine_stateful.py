"""A Hypothesis state machine over the campaign services: whatever sequence of create /
edit / schedule / unschedule / cancel / duplicate / engine runs / approvals happens, only
allowed transitions occur, a scheduled campaign's next run is its earliest unsent delivery,
and a campaign that is not active has none. The workspace's approval threshold is below
every campaign's audience: a member's schedule waits for approval, the owner's does not."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from apps.campaigns import services
from apps.campaigns.errors import CampaignLocked, InvalidTransition
from apps.campaigns.models import Campaign, CampaignStatus
from apps.campaigns.state_machine import VALID_TRANSITIONS
from apps.common import audit
from apps.common.errors import ApplicationError, ValidationFailed
from apps.common.models import AuditLog
from apps.notifications import planning
from apps.notifications.models import WAITING_STATUSES, Delivery, DeliveryStatus

S = CampaignStatus
titles = st.text(alphabet="abcdefghij XYZ!", min_size=1, max_size=20)


class CampaignLifecycle(RuleBasedStateMachine):
    workspace = None
    actor = None  # the owner: schedules without approval, approves and rejects
    member = None  # schedules into pending_approval
    campaigns = Bundle("campaigns")

    def __init__(self):
        super().__init__()
        self.expected: dict = {}  # campaign id -> the status the model predicts
        self.now = timezone.now()

    def _status(self, campaign) -> str:
        return Campaign.all_objects.values_list("status", flat=True).get(pk=campaign.pk)

    def _attempt(self, campaign, operation, allowed: bool, expected_status: str):
        before = self._status(campaign)
        try:
            operation()
        except (InvalidTransition, CampaignLocked, ValidationFailed) as exc:
            assert not allowed, f"refused although allowed: {exc.details}"
        else:
            assert allowed, f"{operation} succeeded from {before}"
        after = self._status(campaign)
        if after != before:
            assert after in VALID_TRANSITIONS[before], (before, after)
        self.expected[campaign.pk] = expected_status if allowed else before
        campaign.status = after

    @rule(target=campaigns, title=titles, recurring=st.booleans())
    def create(self, title, recurring):
        campaign = services.create_campaign(
            workspace=self.workspace,
            actor=self.actor,
            name=title,
            topic="news",
            contents=[{"title": title}],
            rrule="FREQ=DAILY;COUNT=3" if recurring else "",
        )
        self.expected[campaign.pk] = S.DRAFT
        return campaign

    @rule(target=campaigns, source=campaigns)
    def duplicate(self, source):
        copy = services.duplicate_campaign(campaign=source, actor=self.actor)
        assert copy.status == S.DRAFT
        self.expected[copy.pk] = S.DRAFT
        return copy

    @rule(campaign=campaigns, title=titles)
    def edit_contents(self, campaign, title):
        status = self._status(campaign)
        self._attempt(
            campaign,
            lambda: services.update_campaign(
                campaign=campaign, actor=self.actor, contents=[{"title": title}]
            ),
            allowed=status == S.DRAFT,
            expected_status=status,
        )

    @rule(campaign=campaigns, hours=st.integers(min_value=-6, max_value=48))
    def schedule(self, campaign, hours):
        status = self._status(campaign)
        start = self.now + timedelta(hours=hours, minutes=30)
        self._attempt(
            campaign,
            lambda: services.schedule_campaign(
                campaign=campaign, actor=self.actor, scheduled_at=start
            ),
            allowed=status == S.DRAFT and start > timezone.now(),
            expected_status=S.SCHEDULED,
        )

    @rule(campaign=campaigns, hours=st.integers(min_value=-6, max_value=48))
    def member_requests_approval(self, campaign, hours):
        status = self._status(campaign)
        start = self.now + timedelta(hours=hours, minutes=30)
        self._attempt(
            campaign,
            lambda: services.schedule_campaign(
                campaign=campaign, actor=self.member, scheduled_at=start
            ),
            allowed=status == S.DRAFT and start > timezone.now(),
            expected_status=S.PENDING_APPROVAL,
        )
        if self._status(campaign) == S.PENDING_APPROVAL:
            # Nothing is planned while it waits (what an earlier schedule sent stays history).
            waiting = Delivery.objects.filter(campaign_id=campaign.pk, status__in=WAITING_STATUSES)
            assert not waiting.exists()

    @rule(campaign=campaigns)
    def approve(self, campaign):
        status = self._status(campaign)
        start = Campaign.all_objects.get(pk=campaign.pk).scheduled_at
        self._attempt(
            campaign,
            lambda: services.approve_campaign(campaign=campaign, actor=self.actor),
            allowed=status == S.PENDING_APPROVAL and start > timezone.now(),
            expected_status=S.SCHEDULED,
        )
        if self._status(campaign) == S.SCHEDULED and status == S.PENDING_APPROVAL:
            assert Campaign.all_objects.get(pk=campaign.pk).approved_by_id == self.actor.pk

    @rule(campaign=campaigns, reason=titles)
    def reject(self, campaign, reason):
        status = self._status(campaign)
        self._attempt(
            campaign,
            lambda: services.reject_campaign(campaign=campaign, actor=self.actor, reason=reason),
            allowed=status == S.PENDING_APPROVAL,
            expected_status=S.DRAFT,
        )

    @rule(campaign=campaigns)
    def unschedule(self, campaign):
        status = self._status(campaign)
        self._attempt(
            campaign,
            lambda: services.unschedule_campaign(campaign=campaign, actor=self.actor),
            allowed=status in (S.SCHEDULED, S.PENDING_APPROVAL),
            expected_status=S.DRAFT,
        )

    @rule(campaign=campaigns)
    def cancel(self, campaign):
        status = self._status(campaign)
        self._attempt(
            campaign,
            lambda: services.cancel_campaign(campaign=campaign, actor=self.actor),
            allowed=status in (S.DRAFT, S.SCHEDULED, S.PENDING_APPROVAL),
            expected_status=S.CANCELLED,
        )

    @rule(campaign=campaigns)
    def engine_runs_the_next_delivery(self, campaign):
        """What the sending engine does: start the earliest due delivery, finish it, and
        let the campaign's status follow (planning the rest as the loop would)."""
        delivery = (
            Delivery.objects.filter(campaign_id=campaign.pk, status__in=WAITING_STATUSES)
            .order_by("run_at")
            .first()
        )
        if delivery is None:
            assert self._status(campaign) not in (S.SCHEDULED, S.RUNNING)
            return
        now = delivery.run_at
        with transaction.atomic():
            locked = services.lock_for_sending([campaign.pk])
            services.mark_running(locked.values(), now=now)
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.RUNNING)
            services.settle([campaign.pk], now=now)
        assert self._status(campaign) == S.RUNNING
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.COMPLETED)
        with transaction.atomic():
            services.settle([campaign.pk], now=now)
        planning.refill(now=now)
        with transaction.atomic():
            services.settle([campaign.pk], now=now)
        after = self._status(campaign)
        assert after in (S.SCHEDULED, S.COMPLETED)
        self.expected[campaign.pk] = after

    @rule(campaign=consumes(campaigns))
    def delete(self, campaign):
        status = self._status(campaign)
        try:
            services.delete_campaign(campaign=campaign, actor=self.actor)
        except ApplicationError:
            assert status in (S.SCHEDULED, S.RUNNING)
        else:
            assert status not in (S.SCHEDULED, S.RUNNING)
        del self.expected[campaign.pk]

    @invariant()
    def statuses_match_the_model_and_deliveries_match_statuses(self):
        for pk, expected in self.expected.items():
            campaign = Campaign.all_objects.get(pk=pk)
            assert campaign.status == expected
            waiting = Delivery.objects.filter(campaign_id=pk, status__in=WAITING_STATUSES)
            if campaign.status == S.SCHEDULED:
                assert waiting.order_by("run_at").first().run_at == campaign.next_run_at
            else:
                assert not waiting.exists(), campaign.status  # cancelled/draft/completed: none

    @invariant()
    def every_recorded_transition_is_allowed(self):
        own = AuditLog.objects.filter(action="campaign.transition")
        engine = AuditLog.objects.filter(target_type=audit.ENGINE_BATCH_TARGET)
        for metadata in [
            *own.values_list("metadata", flat=True),
            *(e for e in audit.engine_entries(engine) if e["action"] == "campaign.transition"),
        ]:
            assert metadata["to"] in VALID_TRANSITIONS[metadata["from"]]


def test_campaign_lifecycle_state_machine(connected, owner, make_user, add_member):
    from apps.campaigns.models import SendPolicy
    from apps.devices.services import register_one

    register_one(workspace_id=connected.pk, payload={
        "token": "lifecycle:APA91b" + "l" * 60, "time_zone": "UTC", "language": "en",
        "platform": "ios", "topics": ["news"]})  # fmt: skip
    SendPolicy.objects.create(workspace=connected, approval_threshold=0)
    member = make_user(email="lifecycle-member@example.com")
    add_member(connected, member, "member")
    CampaignLifecycle.workspace = connected
    CampaignLifecycle.actor = owner
    CampaignLifecycle.member = member
    run_state_machine_as_test(
        CampaignLifecycle,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
