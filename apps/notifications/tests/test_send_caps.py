"""The frequency cap (refused at schedule time with a 409, enforced again when a delivery
starts, race-free on PostgreSQL) and the send-rate cap (a capped workspace goes out at no
more than its rate while another keeps flowing on time)."""

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.campaigns import services as campaigns
from apps.campaigns.models import SendPolicy
from apps.common.testing import race
from apps.devices.services import register_one
from apps.integrations.firebase.testing import make_firebase_config
from apps.notifications import services
from apps.notifications.models import Delivery, SendRateWindow, TopicSendLog
from apps.notifications.testing import make_due_campaigns

URL = "/api/v1/campaigns"
T = datetime(2035, 5, 1, 9, tzinfo=UTC)


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def cap(workspace, max_sends=2, hours=24, **fields):
    SendPolicy.objects.update_or_create(
        workspace=workspace,
        defaults={"frequency_cap_max_sends": max_sends, "frequency_cap_window_hours": hours,
                  **fields},
    )  # fmt: skip


def create(api, at, target=None, **fields):
    body = {"name": "News", "target": target or {"topic": "news"}, "scheduled_at": iso(at),
            "timezone": "UTC", "contents": [{"title": "Hello"}], **fields}  # fmt: skip
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def schedule(api, campaign_id):
    return api.post(f"{URL}/{campaign_id}/schedule", {})


# --- at schedule time --------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_plan_over_the_cap_is_a_409_naming_topic_window_counts_and_times(
    api, connected_workspace
):
    cap(connected_workspace)
    for offset in (0, 1):
        assert schedule(api, create(api, T + timedelta(hours=offset))).status_code == 200
    third = create(api, T + timedelta(hours=2))
    response = schedule(api, third)
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "FREQUENCY_CAP_EXCEEDED"
    assert error["details"] == {
        "topic": "news", "max_sends": 2, "window_hours": 24, "count": 3, "sent": 0,
        "planned": 2, "this_campaign": 1,
        "occurrences": [(T + timedelta(hours=h)).isoformat() for h in (0, 1, 2)],
    }  # fmt: skip
    assert api.get(f"{URL}/{third}").json()["status"] == "draft"  # nothing changed
    assert not Delivery.objects.filter(campaign_id=third).exists()
    # A day after the first, the window holds the second and this one only.
    later = create(api, T + timedelta(hours=24))
    assert schedule(api, later).status_code == 200
    # Negated topics are not sent to: `!('news' in topics)` is no send to news.
    other = create(
        api,
        T + timedelta(hours=3),
        target={"condition": "'sports' in topics && !('news' in topics)"},
    )
    assert schedule(api, other).status_code == 200


@pytest.mark.django_db
def test_a_recurring_campaign_alone_can_break_the_cap(api, connected_workspace):
    cap(connected_workspace, max_sends=3, hours=24)
    hourly = create(api, T, rrule="FREQ=HOURLY;COUNT=10")
    response = schedule(api, hourly)
    assert response.status_code == 409
    details = response.json()["error"]["details"]
    assert details["this_campaign"] == 10 and details["count"] == 10  # all in one day
    assert details["max_sends"] == 3
    daily = create(api, T, rrule="FREQ=DAILY;COUNT=10")
    assert schedule(api, daily).status_code == 200


@pytest.mark.django_db
def test_sent_deliveries_count_against_the_cap(api, connected_workspace, run_due):
    cap(connected_workspace, max_sends=1)
    start = (timezone.now() + timedelta(minutes=1)).replace(microsecond=0)
    first = create(api, start)
    assert schedule(api, first).status_code == 200
    run_due(start)
    assert Delivery.objects.get(campaign_id=first).status == "completed"
    log = TopicSendLog.objects.get(workspace=connected_workspace, topic="news")
    assert len(log.sends) == 1
    # Cancel nothing, plan again within the window: the sent one counts.
    second = create(api, start + timedelta(hours=1))
    details = schedule(api, second).json()["error"]["details"]
    assert details["sent"] == 1 and details["this_campaign"] == 1


# --- at send time ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_delivery_over_the_cap_when_it_runs_is_skipped_with_the_reason(
    api, connected_workspace, run_due, fake_fcm
):
    at = timezone.now().replace(microsecond=0)
    make_due_campaigns(connected_workspace, 3, at=at)  # planned without the check
    cap(connected_workspace, max_sends=2)
    run_due(at)
    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    assert statuses == {"completed": 2, "skipped": 1}
    assert len(fake_fcm.messages()) == 2
    skipped = Delivery.objects.get(status="skipped")
    jobs = api.get(f"{URL}/{skipped.campaign_id}/jobs").json()["results"]
    assert jobs[0]["status"] == "skipped" and jobs[0]["last_error"].startswith("FREQUENCY_CAP")
    assert "'news'" in jobs[0]["last_error"]


@pytest.mark.django_db
def test_the_zone_deliveries_of_one_occurrence_are_one_send(connected_workspace, owner, run_due):
    for n, zone in enumerate(["Europe/Paris", "Asia/Tokyo"]):
        register_one(workspace_id=connected_workspace.pk, payload={
            "token": f"{n:04d}-cap:APA91b" + "c" * 60, "time_zone": zone, "language": "en",
            "platform": "android", "topics": ["news"]})  # fmt: skip
    cap(connected_workspace, max_sends=1)
    campaign = campaigns.create_campaign(
        workspace=connected_workspace, actor=owner, name="Morning", topic="news",
        contents=[{"title": "Good morning"}], recipient_time_zone=True,
        scheduled_at=datetime(2035, 5, 1, 9), timezone_name="UTC",
    )  # fmt: skip
    campaigns.schedule_campaign(campaign=campaign, actor=owner, now=T - timedelta(days=1))
    for delivery in Delivery.objects.filter(campaign=campaign):
        Delivery.objects.filter(pk=delivery.pk).update(run_at=timezone.now(), due_at=timezone.now())
    run_due(timezone.now())
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "completed"
    }


def _claimed(delivery) -> str:
    """Claim one delivery as a dispatcher would (its own claim token)."""
    token, now = uuid.uuid4(), timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status="queued", claim_token=token, claimed_at=now,
        lease_expires_at=now + timedelta(seconds=60),
    )  # fmt: skip
    return str(token)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_two_deliveries_racing_for_the_last_slot_send_once(connected_workspace, fake_fcm, attempt):
    at = timezone.now().replace(microsecond=0)
    first, second = make_due_campaigns(connected_workspace, 2, at=at)
    cap(connected_workspace, max_sends=1)
    # The topic's record exists (an earlier send, out of the window): its row lock, not the
    # insert of a new row, is what keeps the two apart.
    TopicSendLog.objects.create(workspace=connected_workspace, topic="news", sends=[])
    tokens = [_claimed(first), _claimed(second)]
    race(
        lambda: services.run_batch(tokens[0], [str(first.pk)]),
        lambda: services.run_batch(tokens[1], [str(second.pk)]),
    )
    statuses = sorted(Delivery.objects.values_list("status", flat=True))
    assert statuses == ["completed", "skipped"]
    assert len(fake_fcm.messages()) == 1
    assert len(TopicSendLog.objects.get(topic="news").sends) == 1


# --- the send-rate cap -------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_capped_workspace_goes_out_at_its_rate_without_starving_another(
    connected_workspace, make_workspace, demo_account, run_due, settings, fake_fcm
):
    settings.DISPATCH_CLAIM_SIZE = 20
    settings.DELIVERY_BATCH_SIZE = 20
    other = make_workspace(name="Uncapped")
    make_firebase_config(other, info=demo_account)
    t0 = timezone.now().replace(microsecond=0)
    SendPolicy.objects.create(workspace=connected_workspace, rate_limit_per_minute=10)
    capped = make_due_campaigns(connected_workspace, 35, at=t0)
    free = make_due_campaigns(other, 15, at=t0)

    for second in range(0, 241, 5):  # the dispatcher's clock, 5 s a step
        while run_due(t0 + timedelta(seconds=second)):
            pass  # the loop claims again at once while it claims something

    rows = {d.pk: d for d in Delivery.objects.all()}
    # The uncapped workspace: every delivery claimed and sent at its time.
    assert {rows[d.pk].status for d in free} == {"completed"}
    assert {rows[d.pk].claimed_at for d in free} == {t0}
    # The capped one: all sent in the end, never more than 10 in any rolling minute.
    assert {rows[d.pk].status for d in capped} == {"completed"}
    claims = sorted(rows[d.pk].claimed_at for d in capped)
    for i, start in enumerate(claims):
        within = [c for c in claims[i:] if c < start + timedelta(seconds=60)]
        assert len(within) <= 10, (start, len(within))
    assert claims[-1] >= t0 + timedelta(seconds=180)  # 35 at 10 a minute: the fourth minute
    assert len(fake_fcm.messages()) == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_claiming_at_once_spend_one_minute_once(connected_workspace, fake_fcm):
    """The first dispatcher's claim is still uncommitted when the second claims: the second
    must not spend the same room (it skips the locked window, so claims none of A)."""
    import threading

    from django.db import connection, transaction

    from apps.notifications.dispatcher import DueCounts, claim_due

    t0 = timezone.now().replace(microsecond=0)
    SendPolicy.objects.create(workspace=connected_workspace, rate_limit_per_minute=10)
    make_due_campaigns(connected_workspace, 30, at=t0)
    # Its window exists (the workspace sent before): the row lock keeps the two apart.
    SendRateWindow.objects.create(workspace=connected_workspace, claims=[])
    claimed_first, second_done = threading.Event(), threading.Event()

    def first():
        try:
            with transaction.atomic():
                claim_due(now=t0, counts=DueCounts())
                claimed_first.set()
                second_done.wait(timeout=30)
        finally:
            connection.close()

    def second():
        try:
            claimed_first.wait(timeout=30)
            claim_due(now=t0, counts=DueCounts())
        finally:
            second_done.set()
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Delivery.objects.exclude(status="pending").count() == 10
    assert len(fake_fcm.messages()) == 10
    # A minute later there is room again, for 10 more.
    claim_due(now=t0 + timedelta(seconds=60), counts=DueCounts())
    assert Delivery.objects.exclude(status="pending").count() == 20
