from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.errors import CampaignActive, CampaignLocked, InvalidTransition
from apps.campaigns.metrics import campaign_created_total
from apps.campaigns.models import Campaign, CampaignStatus
from apps.common.errors import ValidationFailed
from apps.common.models import AuditLog
from apps.integrations.firebase.errors import FirebaseNotConnected
from apps.notifications import planning
from apps.notifications.models import Delivery, DeliveryStatus

S = CampaignStatus


def pending_deliveries(campaign):
    return list(
        Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.PENDING).order_by("run_at")
    )


# --- create -----------------------------------------------------------------------------------
def test_create_stores_target_contents_and_defaults(make_campaign, workspace, owner):
    campaign = make_campaign(
        contents=[{"title": "A", "subtitle": "a"}, {"title": "B", "data": {"k": "v"}}]
    )
    assert campaign.status == S.DRAFT
    assert campaign.target == {"topic": "news"}
    assert campaign.timezone == workspace.timezone
    assert campaign.created_by == owner
    assert [(c.position, c.title) for c in campaign.contents.order_by("position")] == [
        (0, "A"),
        (1, "B"),
    ]
    assert AuditLog.objects.filter(action="campaign.created", target_id=str(campaign.pk)).exists()


def test_creation_is_counted_after_commit(make_campaign, django_capture_on_commit_callbacks):
    counter = campaign_created_total.labels(origin="create")
    before = counter._value.get()
    with django_capture_on_commit_callbacks(execute=True):
        make_campaign()
    assert counter._value.get() == before + 1


@pytest.mark.parametrize(
    "target",
    [
        {},
        {"topic": "a", "condition": "'a' in topics"},
        {"topic": "/topics/news"},
        {"topic": "bad topic!"},
        {
            "condition": "'a' in topics && 'b' in topics && 'c' in topics && 'd' in topics "
            "&& 'e' in topics && 'f' in topics"
        },
        {"condition": "'a' in topics &&"},
    ],
)
def test_bad_targets_are_refused(make_campaign, target):
    with pytest.raises(ValidationFailed) as excinfo:
        make_campaign(topic=target.get("topic", ""), condition=target.get("condition", ""))
    assert "target" in excinfo.value.details
    assert not Campaign.objects.exists()


def test_a_condition_with_five_topics_is_fine(make_campaign):
    condition = " || ".join(f"'t{i}' in topics" for i in range(5))
    campaign = make_campaign(topic="", condition=condition)
    assert campaign.target == {"condition": condition}


def test_oversized_content_is_refused_with_its_index(make_campaign):
    with pytest.raises(ValidationFailed) as excinfo:
        make_campaign(
            contents=[
                {"title": "fine"},
                {"title": "big", "subtitle": "x" * 1000, "data": {"k": "y" * 3000}},
            ]
        )
    errors = excinfo.value.details["contents"]
    assert errors[0] == {} and errors[1]


def test_reserved_data_keys_are_refused(make_campaign):
    with pytest.raises(ValidationFailed) as excinfo:
        make_campaign(contents=[{"title": "t", "data": {"from": "me"}}])
    assert excinfo.value.details["contents"][0]["data"]


def test_bad_schedule_inputs_are_refused_at_create(make_campaign, tomorrow):
    with pytest.raises(ValidationFailed) as excinfo:
        make_campaign(scheduled_at=tomorrow, rrule="FREQ=SECONDLY")
    assert "rrule" in excinfo.value.details
    with pytest.raises(ValidationFailed) as excinfo:
        make_campaign(timezone_name="Nowhere/City")
    assert "timezone" in excinfo.value.details


def test_naive_scheduled_at_is_wall_clock_in_the_campaign_zone(make_campaign):
    campaign = make_campaign(
        scheduled_at=datetime(2031, 3, 9, 2, 30), timezone_name="America/New_York"
    )
    # 2031-03-09 02:30 does not exist in New York: the anchor stays 02:30, the instant
    # is the shifted one (03:30 EDT).
    assert campaign.scheduled_local == "2031-03-09T02:30:00"
    assert campaign.scheduled_at == datetime(2031, 3, 9, 7, 30, tzinfo=UTC)


# --- update -----------------------------------------------------------------------------------
def test_contents_are_replaced_in_order_keeping_ids(make_campaign, owner):
    campaign = make_campaign(contents=[{"title": "A"}, {"title": "B"}])
    a, b = campaign.contents.order_by("position")
    updated = services.update_campaign(
        campaign=campaign,
        actor=owner,
        contents=[{"id": b.pk, "title": "B2"}, {"title": "C"}],
    )
    contents = list(updated.contents.all())
    assert [(c.title, c.position) for c in contents] == [("B2", 0), ("C", 1)]
    assert contents[0].pk == b.pk
    assert not updated.contents.filter(pk=a.pk).exists()


def test_unknown_content_id_is_refused(make_campaign, owner):
    import uuid

    campaign = make_campaign()
    with pytest.raises(ValidationFailed):
        services.update_campaign(
            campaign=campaign, actor=owner, contents=[{"id": uuid.uuid4(), "title": "x"}]
        )


def test_timezone_change_keeps_the_wall_clock(make_campaign, owner):
    campaign = make_campaign(scheduled_at=datetime(2031, 1, 6, 9, 0), timezone_name="Europe/Paris")
    updated = services.update_campaign(campaign=campaign, actor=owner, timezone="Asia/Tokyo")
    assert updated.scheduled_local == "2031-01-06T09:00:00"
    assert updated.scheduled_at == datetime(2031, 1, 6, 0, 0, tzinfo=UTC)


def test_locked_fields_need_a_draft_but_the_name_does_not(
    connected, make_campaign, owner, tomorrow
):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    with pytest.raises(CampaignLocked) as excinfo:
        services.update_campaign(campaign=campaign, actor=owner, contents=[{"title": "new"}])
    assert excinfo.value.status_code == 409
    renamed = services.update_campaign(campaign=campaign, actor=owner, name="Renamed")
    assert renamed.name == "Renamed" and renamed.status == S.SCHEDULED
    services.unschedule_campaign(campaign=renamed, actor=owner)
    services.update_campaign(campaign=renamed, actor=owner, contents=[{"title": "new"}])


# --- schedule / unschedule / cancel -----------------------------------------------------------
def test_schedule_needs_firebase(make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    with pytest.raises(FirebaseNotConnected) as excinfo:
        services.schedule_campaign(campaign=campaign, actor=owner)
    assert excinfo.value.status_code == 409 and excinfo.value.code == "FIREBASE_NOT_CONNECTED"


def test_schedule_needs_a_content(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(contents=[], scheduled_at=tomorrow)
    with pytest.raises(ValidationFailed) as excinfo:
        services.schedule_campaign(campaign=campaign, actor=owner)
    assert "contents" in excinfo.value.details


def test_schedule_needs_a_future_start(connected, make_campaign, owner):
    campaign = make_campaign()
    with pytest.raises(ValidationFailed) as excinfo:
        services.schedule_campaign(campaign=campaign, actor=owner)
    assert "scheduled_at" in excinfo.value.details
    with pytest.raises(ValidationFailed) as excinfo:
        services.schedule_campaign(
            campaign=campaign, actor=owner, scheduled_at=timezone.now() - timedelta(minutes=1)
        )
    assert "scheduled_at" in excinfo.value.details
    assert Campaign.objects.get(pk=campaign.pk).status == S.DRAFT


def test_schedule_refuses_a_rule_without_future_runs(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign()
    with pytest.raises(ValidationFailed) as excinfo:
        services.schedule_campaign(
            campaign=campaign,
            actor=owner,
            scheduled_at=tomorrow,
            rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        )
    assert "rrule" in excinfo.value.details


def test_schedule_plans_the_first_occurrences(connected, make_campaign, owner, tomorrow, settings):
    settings.PLAN_HORIZON_SECONDS = 36 * 3600  # tomorrow and the day after are planned
    campaign = make_campaign()
    scheduled = services.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=tomorrow, rrule="FREQ=DAILY;COUNT=3"
    )
    assert scheduled.status == S.SCHEDULED
    assert scheduled.next_run_at == tomorrow
    first, second = pending_deliveries(campaign)
    assert (first.run_at, second.run_at) == (tomorrow, tomorrow + timedelta(days=1))
    assert first.workspace_id == campaign.workspace_id and first.target == {"topic": "news"}
    assert first.occurrence.at == tomorrow and not second.occurrence.is_last
    assert Campaign.objects.get(pk=campaign.pk).rrule == "FREQ=DAILY;COUNT=3"


def test_schedule_twice_is_an_invalid_transition(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    with pytest.raises(InvalidTransition) as excinfo:
        services.schedule_campaign(campaign=campaign, actor=owner)
    assert excinfo.value.details["from"] == "scheduled"
    assert len(pending_deliveries(campaign)) == 1


def test_unschedule_then_reschedule_at_the_same_time(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    services.unschedule_campaign(campaign=campaign, actor=owner)
    assert Campaign.objects.get(pk=campaign.pk).status == S.DRAFT
    assert pending_deliveries(campaign) == []
    services.schedule_campaign(campaign=campaign, actor=owner)
    assert len(pending_deliveries(campaign)) == 1


def test_a_rescheduled_recurring_campaign_runs_next_at_its_first_unsent_delivery(
    connected, make_campaign, owner, tomorrow
):
    """Found by the state machine: its first occurrence was sent (early, as a worker claiming
    ahead may), then unscheduled and scheduled again at the same start — that occurrence is
    not planned again, so the next run is the second one, not the start."""
    campaign = make_campaign(scheduled_at=tomorrow, rrule="FREQ=DAILY;COUNT=3")
    services.schedule_campaign(campaign=campaign, actor=owner)
    first = pending_deliveries(campaign)[0]
    Delivery.objects.filter(pk=first.pk).update(status=DeliveryStatus.COMPLETED)
    services.unschedule_campaign(campaign=campaign, actor=owner)
    campaign = services.schedule_campaign(campaign=campaign, actor=owner)
    waiting = pending_deliveries(campaign)
    assert waiting[0].run_at == first.run_at + timedelta(days=1)
    assert Campaign.objects.get(pk=campaign.pk).next_run_at == waiting[0].run_at
    assert campaign.next_run_at == waiting[0].run_at


def test_cancel_cancels_pending_deliveries_in_the_same_transaction(
    connected, make_campaign, owner, tomorrow
):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    services.cancel_campaign(campaign=campaign, actor=owner)
    assert Campaign.objects.get(pk=campaign.pk).status == S.CANCELLED
    assert pending_deliveries(campaign) == []
    assert Delivery.objects.get(campaign=campaign).status == DeliveryStatus.CANCELLED


def test_cancel_rolls_back_with_the_transition(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    services.cancel_campaign(campaign=campaign, actor=owner)
    with pytest.raises(InvalidTransition):
        services.cancel_campaign(campaign=campaign, actor=owner)


# --- delete / duplicate -----------------------------------------------------------------------
def test_delete_refuses_an_active_campaign(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    with pytest.raises(CampaignActive):
        services.delete_campaign(campaign=campaign, actor=owner)
    services.cancel_campaign(campaign=campaign, actor=owner)
    services.delete_campaign(campaign=campaign, actor=owner)
    assert not Campaign.objects.filter(pk=campaign.pk).exists()
    assert Campaign.all_objects.get(pk=campaign.pk).is_deleted


def test_duplicate_is_a_new_draft_with_the_same_contents(
    connected, make_campaign, owner, tomorrow, django_capture_on_commit_callbacks
):
    campaign = make_campaign(
        scheduled_at=tomorrow,
        rrule="FREQ=WEEKLY",
        contents=[{"title": "A", "data": {"k": "v"}}, {"title": "B"}],
        priority="normal",
        ttl_seconds=600,
    )
    services.schedule_campaign(campaign=campaign, actor=owner)
    counter = campaign_created_total.labels(origin="duplicate")
    before = counter._value.get()
    with django_capture_on_commit_callbacks(execute=True):
        copy = services.duplicate_campaign(campaign=campaign, actor=owner)
    assert counter._value.get() == before + 1
    assert copy.pk != campaign.pk and copy.status == S.DRAFT
    assert copy.duplicated_from_id == campaign.pk
    assert copy.name == "Spring sale (copy)"
    assert (copy.topic, copy.rrule, copy.priority, copy.ttl_seconds) == (
        "news",
        "FREQ=WEEKLY",
        "normal",
        600,
    )
    assert copy.scheduled_at is None and copy.next_run_at is None
    assert [(c.title, c.data) for c in copy.contents.all()] == [("A", {"k": "v"}), ("B", {})]
    assert not Delivery.objects.filter(campaign=copy).exists()


# --- the engine's side of the state machine ---------------------------------------------------
def run(delivery, status=DeliveryStatus.COMPLETED):
    """What the engine does around one delivery: start it, finish it, settle the campaign."""
    with transaction.atomic():
        services.mark_running(services.lock_for_sending([delivery.campaign_id]).values(),
                              now=delivery.run_at)  # fmt: skip
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.RUNNING)
        services.settle([delivery.campaign_id], now=delivery.run_at)
        assert Campaign.objects.get(pk=delivery.campaign_id).status == S.RUNNING
        Delivery.objects.filter(pk=delivery.pk).update(status=status)
        services.settle([delivery.campaign_id], now=delivery.run_at)
    return Campaign.objects.get(pk=delivery.campaign_id)


def test_recurring_campaign_goes_back_to_scheduled_between_occurrences(
    connected, make_campaign, owner, tomorrow, settings
):
    settings.PLAN_HORIZON_SECONDS = 3 * 86400
    campaign = make_campaign()
    services.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=tomorrow, rrule="FREQ=DAILY;COUNT=2"
    )
    first, second = pending_deliveries(campaign)
    campaign = run(first)
    assert campaign.status == S.SCHEDULED
    assert campaign.last_run_at == tomorrow
    assert campaign.next_run_at == second.run_at == tomorrow + timedelta(days=1)
    campaign = run(second)
    assert campaign.status == S.COMPLETED and campaign.next_run_at is None
    assert pending_deliveries(campaign) == []


def test_the_plan_is_refilled_ahead(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign()
    start = tomorrow + timedelta(hours=1)  # beyond the horizon: the next one is not planned
    services.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=start,
                               rrule="FREQ=DAILY")  # fmt: skip
    assert len(pending_deliveries(campaign)) == 1
    assert planning.refill() == []  # nothing to add yet
    assert planning.refill(now=start) == [campaign.pk]
    assert [d.run_at for d in pending_deliveries(campaign)] == [start, start + timedelta(days=1)]


def test_instants_missed_beyond_the_catch_up_window_are_not_planned(
    connected, make_campaign, owner, tomorrow
):
    campaign = make_campaign()  # the default catch-up window: one hour
    services.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=tomorrow, rrule="FREQ=HOURLY"
    )
    for delivery in pending_deliveries(campaign):
        run(delivery)
    # The planner was down for five hours: what is more than an hour late is not planned.
    late = max(d.run_at for d in Delivery.objects.filter(campaign=campaign)) + timedelta(
        hours=5, minutes=10
    )
    planning.refill(now=late)
    assert pending_deliveries(campaign)[0].run_at == late - timedelta(minutes=10)


def test_a_one_off_campaign_whose_run_failed_ends_failed(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    [delivery] = pending_deliveries(campaign)
    assert run(delivery, DeliveryStatus.FAILED).status == S.FAILED


def test_a_skipped_run_ends_a_one_off_campaign_failed_and_a_recurring_one_completed(
    connected, make_campaign, owner, tomorrow
):
    one_off = make_campaign(scheduled_at=tomorrow)
    recurring = make_campaign(scheduled_at=tomorrow, rrule="FREQ=DAILY;COUNT=1")
    for campaign in (one_off, recurring):
        services.schedule_campaign(campaign=campaign, actor=owner)
        Delivery.objects.filter(campaign=campaign).update(status=DeliveryStatus.SKIPPED)
        with transaction.atomic():
            services.settle([campaign.pk], now=tomorrow)
    assert Campaign.objects.get(pk=one_off.pk).status == S.FAILED
    assert Campaign.objects.get(pk=recurring.pk).status == S.COMPLETED


def test_settle_leaves_inactive_campaigns_alone(connected, make_campaign, owner, tomorrow):
    campaign = make_campaign(scheduled_at=tomorrow)
    services.schedule_campaign(campaign=campaign, actor=owner)
    services.cancel_campaign(campaign=campaign, actor=owner)
    with transaction.atomic():
        services.settle([campaign.pk], now=tomorrow)
    assert Campaign.objects.get(pk=campaign.pk).status == S.CANCELLED


def test_a_content_that_validates_is_never_too_big_to_send(workspace, owner):
    """Validation builds the message exactly as the engine sends it (ids and collapse
    identity included), so the largest accepted content still fits FCM's 2048 bytes."""
    import uuid

    from apps.common.errors import ApplicationError
    from apps.integrations.firebase.validation import message_size

    def create(length: int):
        return services.create_campaign(
            workspace=workspace, actor=owner, name="Big", topic="news",
            contents=[{"title": "T", "subtitle": "Body", "data": {"blob": "x" * length}}],
        )  # fmt: skip

    low, high = 0, 2048  # the largest length that validates, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        try:
            create(middle)
            low = middle
        except ApplicationError:
            high = middle - 1
    campaign = create(low)
    message = services.message_for(
        campaign, campaign.contents.get(), target=campaign.target, notification_id=uuid.uuid4()
    )
    assert message_size(message) <= 2048
    assert message["data"]["pushpilot_campaign_id"] == str(campaign.pk)
