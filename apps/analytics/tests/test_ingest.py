"""POST /events: authentication by ingest key, per-event validation, dedupe, tenancy, size
limit, throttling, and rollups that match a direct count of the stored events."""

import io
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from apps.analytics import rollups, services
from apps.analytics.authentication import BoundedJSONParser
from apps.analytics.models import NIL_UUID, AnalyticsEvent, EventRollup, IngestKey
from apps.analytics.tests.factories import event, record_outcome
from apps.common.errors import PayloadTooLarge

URL = "/api/v1/events"


def post(client, events):
    return client.post(URL, {"events": events}, format="json")


def test_a_batch_is_accepted_and_duplicates_are_ignored(app, workspace):
    e1, e2 = event("e1"), event("e2", "clicked")
    first = post(app, [e1, e2, event("e3", "delivered")])
    assert first.status_code == 202, first.content
    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": 0, "errors": []}

    # The app retries events unchanged (an event is its id and occurred_at), with one new
    # event and one repeated inside the batch (an id counts once per batch).
    again = post(app, [e1, e2, event("e4"), event("e4")])
    assert again.json() == {"accepted": 1, "duplicates": 3, "rejected": 0, "errors": []}
    assert sorted(AnalyticsEvent.objects.values_list("event_id", flat=True)) == [
        "e1", "e2", "e3", "e4",
    ]  # fmt: skip
    counted = summed(EventRollup.objects.filter(workspace=workspace), "event_type")
    assert counted == {("opened",): 2, ("clicked",): 1, ("delivered",): 1}


def test_the_same_client_id_in_two_workspaces_is_two_events(
    app, app_client, make_key, make_workspace
):
    other = make_workspace(name="Other")
    other_app = app_client(make_key(other).secret)
    assert post(app, [event("same")]).json()["accepted"] == 1
    assert post(other_app, [event("same")]).json()["accepted"] == 1


def test_a_mixed_batch_keeps_the_valid_events_and_describes_the_others(app, workspace):
    now = timezone.now()
    batch = [
        event("ok-1"),
        event("bad type", "opened"),  # id with a space
        event("ok-2", "conversion:purchase", platform="ios", properties={"value": 9.99}),
        event("t1", "exploded"),
        {"id": "t2", "type": "opened", "occurred_at": "2026-01-01T10:00:00"},  # no offset
        event("t3", at=now + timedelta(days=2)),
        event("t4", at=now - timedelta(days=400)),
        event("t5", notification_id="not-a-uuid"),
        "not an object",
        event("t6", platform="blackberry"),
        event("t7", properties={"blob": "x" * 5000}),
        event("t8", "conversion:"),
        event("t9", properties={"note": "nul\x00byte"}),
        event("t10", platform=["ios"]),
        {"id": "t11", "type": "opened", "occurred_at": "0001-01-01T00:00:00+05:00"},
        event("ok-3", "dismissed", platform="android", campaign_id=None),
    ]
    response = post(app, batch)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 0, 13)
    errors = {error["index"]: error for error in body["errors"]}
    assert list(errors) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # in batch order
    assert list(errors[1]["errors"]) == ["id"] and errors[1]["id"] == "bad type"
    assert list(errors[3]["errors"]) == ["type"]
    assert "offset" in errors[4]["errors"]["occurred_at"][0]
    assert "future" in errors[5]["errors"]["occurred_at"][0]
    assert "days" in errors[6]["errors"]["occurred_at"][0]
    assert list(errors[7]["errors"]) == ["notification_id"]
    assert errors[8] == {
        "index": 8, "id": None, "errors": {"non_field_errors": ["Each event must be an object."]}
    }  # fmt: skip
    assert list(errors[9]["errors"]) == ["platform"]
    assert list(errors[10]["errors"]) == ["properties"]
    assert list(errors[11]["errors"]) == ["type"]
    assert "NUL" in errors[12]["errors"]["properties"][0]
    assert list(errors[13]["errors"]) == ["platform"]
    assert list(errors[14]["errors"]) == ["occurred_at"]
    stored = AnalyticsEvent.objects.get(event_id="ok-2")
    assert (stored.type, stored.platform, stored.properties) == (
        "conversion:purchase", "ios", {"value": 9.99}
    )  # fmt: skip
    assert stored.workspace_id == workspace.pk


@pytest.mark.parametrize(
    "body",
    [{}, {"events": []}, {"events": "x"}, {"events": [{}] * 1001}, ["not", "an", "object"]],
)
def test_a_malformed_envelope_is_a_400(app, body):
    response = app.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "events" in response.json()["error"]["details"]


def test_ids_must_belong_to_the_keys_workspace(
    app, workspace, make_workspace, make_user, make_sent_campaign
):
    campaign, (mine, _) = make_sent_campaign(workspace)
    other = make_workspace(owner=make_user(email="b@b.test"), name="B")
    their_campaign, (theirs, _) = make_sent_campaign(other, actor=other.created_by)
    response = post(
        app,
        [
            event("a", notification_id=str(mine.pk)),
            event("b", notification_id=str(theirs.pk)),
            event("c", campaign_id=str(their_campaign.pk)),
            event("d", campaign_id=str(campaign.pk)),
            event("e", notification_id=str(mine.pk), campaign_id=str(their_campaign.pk)),
            event("f", notification_id=str(uuid.uuid4())),
        ],
    )
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 4)
    assert {e["id"]: list(e["errors"]) for e in body["errors"]} == {
        "b": ["notification_id"],
        "c": ["campaign_id"],
        "e": ["campaign_id"],
        "f": ["notification_id"],
    }
    # Another workspace's id reads exactly like one that does not exist.
    by_id = {e["id"]: e["errors"] for e in body["errors"]}
    assert by_id["b"] == by_id["f"]
    # The notification's campaign and content are filled in.
    stored = AnalyticsEvent.objects.get(event_id="a")
    assert (stored.campaign_id, stored.content_id) == (campaign.pk, mine.content_id)
    assert not AnalyticsEvent.objects.filter(event_id__in=["b", "c", "e", "f"]).exists()
    assert not EventRollup.objects.filter(workspace=other).exists()


def test_ids_in_any_uuid_spelling_resolve_and_the_first_valid_repeat_counts(
    app, workspace, make_sent_campaign
):
    campaign, (first, second) = make_sent_campaign(workspace)
    response = post(
        app,
        [
            event("a", notification_id=str(first.pk).upper()),
            event("b", notification_id=f"urn:uuid:{second.pk}", campaign_id=str(campaign.pk)),
            event("c", campaign_id="{" + str(campaign.pk) + "}"),
            # Repeats: the first one whose ids resolve is the one stored and counted.
            event("d", "clicked", notification_id=str(uuid.uuid4())),
            event("d", "dismissed", notification_id=str(first.pk)),
            event("d", "opened", notification_id=str(first.pk)),
        ],
    )
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (4, 1, 1), body
    assert [(e["index"], e["id"], list(e["errors"])) for e in body["errors"]] == [
        (3, "d", ["notification_id"])
    ]
    stored = {e.event_id: e for e in AnalyticsEvent.objects.filter(workspace=workspace)}
    assert (stored["a"].notification_id, stored["a"].content_id) == (first.pk, first.content_id)
    assert (stored["b"].campaign_id, stored["b"].content_id) == (campaign.pk, second.content_id)
    assert (stored["c"].campaign_id, stored["c"].content_id) == (campaign.pk, None)
    assert stored["d"].type == "dismissed"
    counted = Counter()
    for event_type, n in EventRollup.objects.filter(workspace=workspace).values_list(
        "event_type", "count"
    ):
        counted[event_type] += n
    assert counted == {"opened": 3, "dismissed": 1}


def test_keys_not_jwts_authenticate_apps(api, app_client, ingest_key, workspace):
    missing = api.post(URL, {"events": [event("x")]}, format="json")  # a JWT is not a key
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "NOT_AUTHENTICATED"
    wrong = post(app_client("ppk_live_" + "x" * 43), [event("x")])
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert post(app_client("Bearer nonsense"), [event("x")]).status_code == 401
    assert not AnalyticsEvent.objects.exists()


def test_a_body_over_the_limit_is_a_413_in_the_error_format(app):
    padding = "x" * 1000
    batch = [event(f"e{i}", properties={"p": padding}) for i in range(1000)]  # ~1.1 MB
    response = app.post(URL, json.dumps({"events": batch}), content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.json()["error"]["details"] == {"max_bytes": 1024 * 1024}
    assert not AnalyticsEvent.objects.exists()


def test_a_body_without_a_length_is_read_only_up_to_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    parser = BoundedJSONParser()
    assert parser.parse(io.BytesIO(b'{"events": []}'), parser_context={}) == {"events": []}
    with pytest.raises(PayloadTooLarge):
        parser.parse(io.BytesIO(b"[" + b"1," * 100 + b"1]"), parser_context={})


def test_ingestion_is_throttled_per_key(monkeypatch, app, app_client, make_key, workspace):
    from apps.analytics.authentication import IngestKeyThrottle

    monkeypatch.setitem(IngestKeyThrottle.THROTTLE_RATES, "ingest", "2/min")
    assert post(app, [event("a")]).status_code == 202
    assert post(app, [event("b")]).status_code == 202
    throttled = post(app, [event("c")])
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "THROTTLED"
    assert int(throttled["Retry-After"]) > 0
    other_key = app_client(make_key(workspace, name="Android app").secret)
    assert post(other_key, [event("c")]).status_code == 202  # its own budget


def test_last_used_at_is_written_at_most_once_a_minute(app, ingest_key):
    assert post(app, [event("a")]).status_code == 202
    key = IngestKey.objects.get(pk=ingest_key.key.pk)
    first = key.last_used_at
    assert first is not None
    assert post(app, [event("b")]).status_code == 202
    assert IngestKey.objects.get(pk=key.pk).last_used_at == first
    # A minute later (another process, or the gate expired), the next use writes again.
    later = first + timedelta(minutes=2)
    from django.core.cache import cache

    cache.delete(f"analytics:ingest-key-used:{key.pk}")
    services.note_key_used(key.pk, now=later)
    assert IngestKey.objects.get(pk=key.pk).last_used_at == later


def test_rollups_match_a_direct_count_of_the_events(workspace, make_sent_campaign):
    """Many batches with repeats: every rollup bucket equals COUNT(*) of its events."""
    now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    campaign, notifications = make_sent_campaign(workspace, contents=3)
    rng = random.Random(7)
    types = ["delivered", "opened", "clicked", "dismissed", "conversion:buy", "conversion:signup"]
    ids = [f"ev-{i}" for i in range(600)]
    for _ in range(6):
        batch = []
        for event_id in rng.sample(ids, 150):  # overlapping samples: lots of duplicates
            target = rng.choice([*notifications, None, "campaign"])
            fields = (
                {"notification_id": str(target.pk)} if isinstance(target, object) and
                hasattr(target, "pk") else {"campaign_id": str(campaign.pk)}
                if target == "campaign" else {}
            )  # fmt: skip
            # Same id, same content whenever it repeats: derive the rest from the id.
            seed = random.Random(event_id)
            at = now - timedelta(minutes=seed.randrange(0, 72 * 60))
            batch.append(event(event_id, seed.choice(types), at=at, **fields))
        services.ingest_events(workspace_id=workspace.pk, payload={"events": batch}, now=now)

    direct = Counter()
    for row in (
        AnalyticsEvent.objects.filter(workspace=workspace)
        .annotate(hour=TruncHour("occurred_at"))
        .values("campaign_id", "content_id", "type", "hour")
        .annotate(n=Count("pk"))
    ):
        key = (
            row["campaign_id"] or NIL_UUID,
            row["content_id"] or NIL_UUID,
            row["type"],
            row["hour"],
        )
        direct[key] += row["n"]
    rolled = Counter(
        summed(
            EventRollup.objects.filter(workspace=workspace),
            "campaign_id", "content_id", "event_type", "bucket",
        )
    )  # fmt: skip
    assert len(direct) > 50
    assert rolled == direct
    assert sum(rolled.values()) == AnalyticsEvent.objects.filter(workspace=workspace).count()


def test_notification_outcomes_count_in_their_hour(workspace, make_sent_campaign):
    campaign, (first, second) = make_sent_campaign(workspace)
    at = datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC)
    record_outcome(first, "sent", at)
    record_outcome(second, "sent", at + timedelta(seconds=1))
    record_outcome(second, "failed", at)
    rows = [
        (*key, n)
        for key, n in summed(
            EventRollup.objects.filter(campaign_id=campaign.pk),
            "content_id",
            "event_type",
            "bucket",
        ).items()
    ]
    assert sorted(rows, key=str) == sorted(
        [
            (first.content_id, "sent", datetime(2026, 3, 8, 6, tzinfo=UTC), 1),
            (second.content_id, "sent", datetime(2026, 3, 8, 7, tzinfo=UTC), 1),
            (second.content_id, "failed", datetime(2026, 3, 8, 6, tzinfo=UTC), 1),
        ],
        key=str,
    )
    record_outcome(first, "sent", at)
    sent = EventRollup.objects.filter(content_id=first.content_id, event_type="sent")
    assert summed(sent, "event_type") == {("sent",): 2}
    with pytest.raises(ValueError):
        record_outcome(first, "opened", at)


def test_rebuild_recomputes_rollups_from_events_and_notifications(
    workspace, make_sent_campaign, app
):
    from django.core.management import call_command

    from apps.notifications.models import Notification

    _, (first, second) = make_sent_campaign(workspace)
    sent_at = datetime(2026, 11, 1, 9, 15, tzinfo=UTC)
    Notification.objects.filter(pk=first.pk).update(status="sent", sent_at=sent_at)
    Notification.objects.filter(pk=second.pk).update(status="failed")
    assert post(app, [event("a", notification_id=str(first.pk)), event("b")]).status_code == 202
    before = {
        (*key, n) for key, n in summed(EventRollup.objects, "content_id", "event_type").items()
    }
    EventRollup.objects.filter(event_type="opened").update(count=99)  # drifted

    call_command("rebuild_rollups", workspace=str(workspace.pk), stdout=io.StringIO())
    after = {
        (*key, n) for key, n in summed(EventRollup.objects, "content_id", "event_type").items()
    }
    assert after == before | {
        (first.content_id, "sent", 1),
        (second.content_id, "failed", 1),
    }
    assert EventRollup.objects.get(event_type="sent").bucket == datetime(2026, 11, 1, 9, tzinfo=UTC)


def summed(rollups, *keys) -> dict:
    """The counts by `keys`, every shard of a bucket added up (as the reads do)."""
    rows = rollups.values_list(*keys).annotate(n=Sum("count")).order_by()
    return {tuple(row[:-1]): row[-1] for row in rows}


def test_the_shards_of_a_bucket_add_up(workspace, make_sent_campaign, api, monkeypatch):
    campaign, (first, _) = make_sent_campaign(workspace)
    at = timezone.now()
    for shard in (0, 3, 3):
        monkeypatch.setattr(rollups, "pick_shard", lambda shard=shard: shard)
        record_outcome(first, "sent", at)
    rows = EventRollup.objects.filter(campaign_id=campaign.pk, event_type="sent")
    assert sorted(rows.values_list("shard", "count")) == [(0, 1), (3, 2)]
    assert api.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()["totals"]["sent"] == 3
