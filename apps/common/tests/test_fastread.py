"""The fast read path (apps/common/fastread.py) against DRF's own output: the mechanism on
awkward values, then every list and detail endpoint that uses it, on realistic rows, answered
once with the fast path and once with DRF's `to_representation`: the same JSON, field for
field."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from apps.common import audit
from apps.common.fastread import FastReadMixin, drf_output
from apps.common.models import AuditLog
from apps.common.related import with_related_columns
from apps.notifications.models import Notification

pytestmark = pytest.mark.django_db


def assert_same_rows(fast, reference):
    """Field for field first (a readable failure), then the whole rendered body."""
    fast_rows = fast if isinstance(fast, list) else [fast]
    reference_rows = reference if isinstance(reference, list) else [reference]
    assert len(fast_rows) == len(reference_rows)
    for fast_row, reference_row in zip(fast_rows, reference_rows, strict=True):
        assert list(fast_row) == list(reference_row)  # same fields, same order
        for name in reference_row:
            assert as_json(fast_row[name]) == as_json(reference_row[name]), name
    assert JSONRenderer().render(fast) == JSONRenderer().render(reference)


def as_json(value) -> bytes:
    return JSONRenderer().render(value)


def both(serializer_class, instance, **kwargs):
    fast = serializer_class(instance, **kwargs).data
    with drf_output():
        reference = serializer_class(instance, **kwargs).data
    return fast, reference


# --- the mechanism ------------------------------------------------------------------------------
class Row:
    """A plain object: nothing here is a model column, so every field goes through DRF."""

    def __init__(self, **values):
        self.__dict__.update(values)


class Shout(serializers.CharField):
    def to_representation(self, value):
        return str(value).upper()


class AuditRowSerializer(FastReadMixin, serializers.ModelSerializer):
    actor_email = serializers.EmailField(source="actor.email", default=None, read_only=True)
    actor_name = serializers.CharField(source="actor.name", read_only=True)  # no actor: left out
    loud_action = Shout(source="action", read_only=True)
    request = serializers.SerializerMethodField()
    paris = serializers.DateTimeField(source="created_at", default_timezone=None, read_only=True)

    class Meta:
        model = AuditLog
        fields = ["id", "created_at", "actor", "actor_email", "actor_name", "action", "loud_action",
                  "target_id", "metadata", "ip", "request", "paris"]  # fmt: skip

    def get_request(self, entry):
        return self.context.get("marker")


def test_model_rows_in_any_time_zone_and_with_a_missing_relation(workspace, owner):
    by_owner = audit.record("x.done", actor=owner, workspace=workspace, target_id="1",
                            metadata={"nested": [1, {"a": None}]})  # fmt: skip
    by_nobody = audit.record("x.done", workspace=workspace, target_id="2")
    AuditLog.objects.filter(pk=by_owner.pk).update(ip="2001:db8::1")
    rows = list(AuditLog.objects.filter(pk__in=[by_owner.pk, by_nobody.pk]).order_by("target_id"))
    for zone in ("UTC", "Europe/Paris", "America/St_Johns"):
        with timezone.override(zone):
            fast, reference = both(AuditRowSerializer, rows, many=True, context={"marker": zone})
            assert_same_rows(fast, reference)
            assert fast[0]["request"] == zone  # the method runs with the caller's context
    assert fast[1]["actor_email"] is None and fast[0]["actor_email"] == owner.email
    assert "actor_name" not in fast[1] and fast[0]["actor_name"] == owner.name
    assert fast[0]["loud_action"] == "X.DONE"  # a custom field's own to_representation
    assert fast[0]["ip"] == "2001:db8::1" and fast[1]["ip"] is None


def test_none_in_model_columns(workspace):
    entry = AuditLog(workspace=workspace, action=None, target_id=None, metadata=None)
    fast, reference = both(AuditRowSerializer, [entry], many=True)
    assert_same_rows(fast, reference)
    assert fast[0]["action"] is None and fast[0]["created_at"] is None


def test_a_serialized_list_lets_go_of_its_rows(workspace):
    import gc
    import weakref

    entries = [audit.record("x.done", workspace=workspace, target_id=str(i)) for i in range(3)]
    alive = weakref.ref(entries[0])
    serializer = AuditRowSerializer(entries, many=True)
    serializer.child.parent = serializer  # a cycle, as a request's view and response make
    data = serializer.data
    del entries
    gc.disable()  # freed by reference counting, not by the cyclic collector
    try:
        assert alive() is None
    finally:
        gc.enable()
    assert [row["target_id"] for row in serializer.data] == ["0", "1", "2"]  # kept
    assert data.serializer is serializer


class AnnotatedSerializer(FastReadMixin, serializers.ModelSerializer):
    actor_email = serializers.EmailField(read_only=True, allow_null=True)  # an annotation
    shouted = Shout(read_only=True)  # an annotation through a custom field

    class Meta:
        model = AuditLog
        fields = ["id", "actor_email", "shouted"]


def test_annotations_of_model_rows(workspace, owner):
    audit.record("x.done", actor=owner, workspace=workspace, target_id="1")
    audit.record("x.done", workspace=workspace, target_id="2")
    rows = list(
        with_related_columns(
            AuditLog.objects.filter(workspace=workspace, target_id__in=["1", "2"]),
            actor_email="actor__email",
        )
        .annotate(shouted=F("action"))
        .order_by("target_id")
    )
    fast, reference = both(AnnotatedSerializer, rows, many=True)
    assert_same_rows(fast, reference)
    assert [row["actor_email"] for row in fast] == [owner.email, None]
    assert fast[0]["shouted"] == "X.DONE"
    # A row without the annotations is DRF's business: what it answers (None: allow_null).
    bare = AuditLog.objects.filter(workspace=workspace, target_id="1").first()
    fast, reference = both(AnnotatedSerializer, bare)
    assert_same_rows(fast, reference)


class PlainSerializer(FastReadMixin, serializers.Serializer):
    name = serializers.CharField()
    when = serializers.DateTimeField()
    day = serializers.DateField(required=False)
    count = serializers.IntegerField()
    flag = serializers.BooleanField()
    choice = serializers.ChoiceField(choices=[("a", "A"), (1, "one")])
    optional = serializers.CharField(required=False)
    tags = serializers.ListField(child=serializers.CharField())


@pytest.mark.parametrize(
    "values",
    [
        {"name": "n", "when": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "count": 3,
         "flag": True, "choice": "a", "tags": ["x", 1]},
        # naive, with a microsecond-free time; a date; numbers and strings that DRF coerces
        {"name": 5, "when": datetime(2026, 1, 2, 3, 4, 5), "day": datetime(2026, 1, 2).date(),
         "count": "7", "flag": 0, "choice": 1, "tags": [], "optional": "here"},
        {"name": "", "when": "2026-01-01T00:00:00Z", "count": 0, "flag": "false",
         "choice": "", "tags": [None]},
    ],
)  # fmt: skip
def test_plain_objects_and_coerced_values(values):
    fast, reference = both(PlainSerializer, Row(**values))
    assert_same_rows(fast, reference)
    assert ("optional" in fast) == ("optional" in values)  # missing and not required: left out


class WhenSerializer(FastReadMixin, serializers.Serializer):
    when = serializers.DateTimeField()


# Aware values of every form DRF writes (microseconds or none, far years, a zone's LMT offset
# with seconds, zero offsets that are not UTC), in output zones of each kind.
AWARE_VALUES = [
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=ZoneInfo("UTC")),
    datetime(2026, 7, 2, 3, 4, 5, 999999, tzinfo=ZoneInfo("Europe/Paris")),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Europe/London")),
    datetime(1900, 1, 1, 0, 0, 1, tzinfo=ZoneInfo("Africa/Abidjan")),  # -00:16:08
    datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=UTC),
    datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Africa/Abidjan", "America/St_Johns"])
def test_aware_date_times_in_any_output_zone(zone):
    rows = [Row(when=value) for value in AWARE_VALUES]
    with timezone.override(zone):
        fast, reference = both(WhenSerializer, rows, many=True)
    assert_same_rows(fast, reference)
    assert [row["when"] for row in fast] == [row["when"] for row in reference]  # the text


class LoggedAtSerializer(FastReadMixin, serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = ["created_at"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Africa/Abidjan"])
def test_date_time_columns_in_any_output_zone(zone):
    """A model column is read in line by the generated row reader (its UTC case too)."""
    assert LoggedAtSerializer._readers()[0][1].column == "created_at"
    rows = [AuditLog(created_at=value) for value in [*AWARE_VALUES, "2026-01-02T03:04:05Z"]]
    with timezone.override(zone):
        fast, reference = both(LoggedAtSerializer, rows, many=True)
    assert [row["created_at"] for row in fast] == [row["created_at"] for row in reference]


def test_a_subclass_reads_its_own_fields(workspace):
    class Narrow(FastReadMixin, serializers.ModelSerializer):
        class Meta:
            model = AuditLog
            fields = ["id", "action"]

    class Wider(Narrow):
        class Meta(Narrow.Meta):
            fields = ["id", "action", "target_id"]

    entry = audit.record("x.done", workspace=workspace, target_id="9")
    assert list(Narrow(entry).data) == ["id", "action"]
    assert list(Wider(entry).data) == ["id", "action", "target_id"]
    assert_same_rows(*both(Wider, entry))


def test_fields_that_need_the_request_are_refused():
    class Linked(FastReadMixin, serializers.Serializer):
        link = serializers.HyperlinkedIdentityField(view_name="anything")

    with pytest.raises(TypeError, match="needs the request context"):
        Linked(Row(pk=1)).data  # noqa: B018 (the read is the test)


# --- the endpoints, on realistic rows ------------------------------------------------------------
@pytest.fixture
def filled(workspace, owner):
    """Campaigns in several states and shapes, their deliveries and notifications (sent,
    failed, content deleted), audit rows by a person, an API key and the engine, devices."""
    from apps.campaigns import services as campaigns
    from apps.devices.services.registry import register_one
    from apps.integrations.firebase.testing import make_firebase_config
    from apps.notifications.testing import make_delivery
    from apps.workspaces.keys import ApiKeyPrincipal, create_api_key

    make_firebase_config(workspace)
    soon = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    plain = campaigns.create_campaign(
        workspace=workspace, actor=owner, name="Plain", topic="news",
        contents=[{"title": "Hello", "subtitle": "World"}],
    )  # fmt: skip
    rich = campaigns.create_campaign(
        workspace=workspace, actor=owner, name="Rich", description="All the options",
        condition="'news' in topics && !('muted' in topics)",
        contents=[
            {"title": "A", "subtitle": "a", "image_url": "https://example.com/a.png",
             "data": {"k": "v", "deep": "1"}, "link": "https://example.com/a",
             "analytics_label": "a-label"},
            {"title": "B", "subtitle": ""},
        ],
        scheduled_at=soon, timezone_name="Europe/Berlin", rrule="FREQ=DAILY;COUNT=5",
        exclusion_dates=[soon.date() + timedelta(days=1)], catch_up_window_seconds=None,
        priority="normal", ttl_seconds=600, collapse_key="sale", sound="default", badge=3,
    )  # fmt: skip
    tested = campaigns.create_campaign(
        workspace=workspace, actor=owner, name="A/B", topic="news", scheduled_at=soon,
        contents=[{"title": "One"}, {"title": "Two"}], experiment={"metric": "clicked"},
    )  # fmt: skip
    campaigns.schedule_campaign(campaign=plain, actor=owner, scheduled_at=soon)
    delivered = make_delivery(rich, soon - timedelta(days=3), status="completed", attempts=2,
                              finished_at=soon - timedelta(days=3), last_error="")  # fmt: skip
    failed = make_delivery(rich, soon - timedelta(days=2), status="failed", attempts=5,
                           last_error="UNAVAILABLE: try later")  # fmt: skip
    first, second = rich.contents.order_by("position")
    # Translations as services write them, and one without a subtitle (DRF leaves it out).
    first.translations = {"de": {"title": "Ä", "subtitle": "ä"}, "fr": {"title": "À"}}
    first.save(update_fields=["translations"])
    Notification.objects.bulk_create([
        Notification(workspace=workspace, campaign=rich, delivery=delivered, content=first,
                     position=0, title="A", body="a", status="sent",
                     fcm_message_id="projects/p/messages/1", sent_at=soon - timedelta(days=3)),
        Notification(workspace=workspace, campaign=rich, delivery=delivered, content=None,
                     position=1, title="B", status="failed", error_code="INVALID_ARGUMENT",
                     error_message="The message is not valid: \u00e9\u00e8 \"quoted\""),
        Notification(workspace=workspace, campaign=rich, delivery=failed, content=second,
                     position=1, title="B", status="pending"),
    ])  # fmt: skip
    issued = create_api_key(workspace=workspace, actor=owner, name="CI key",
                            scopes=["campaigns:read"])  # fmt: skip
    audit.record("campaign.updated", actor=ApiKeyPrincipal(issued.key), workspace=workspace,
                 target=rich, metadata={"fields": ["name"]})  # fmt: skip
    audit.record("engine.batch_settled", workspace=workspace, target_type="engine.batch",
                 target_id="token", metadata={"counts": {"delivery.completed": 1}})  # fmt: skip
    from apps.analytics.services.ingest import ingest_events
    from apps.analytics.tests.factories import event, record_outcome

    sent = Notification.objects.filter(status="sent").get()
    record_outcome(sent, "sent", timezone.now() - timedelta(hours=1))
    ingest_events(workspace_id=workspace.pk, payload={"events": [
        event("e1", "delivered", notification_id=str(sent.pk), platform="ios"),
        event("e2", "opened", notification_id=str(sent.pk), platform="ios"),
        event("e3", "conversion:purchase", campaign_id=str(rich.pk)),
    ]})  # fmt: skip
    for token, platform in (("a", "android"), ("b", "ios")):
        register_one(
            workspace_id=workspace.pk,
            payload={"token": f"{token * 8}:APA91b-test-token-0123456789", "platform": platform,
                     "time_zone": "Europe/Lisbon", "language": "pt_BR", "app_version": "4.2",
                     "topics": ["news", "sports"]},
        )  # fmt: skip
    from apps.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

    endpoint = WebhookEndpoint.objects.create(workspace=workspace, url="https://example.com/h",
                                              secret_encrypted="-")  # fmt: skip
    message = WebhookMessage.objects.create(workspace=workspace, endpoint=endpoint, event_id="m1",
                                            event_type="campaign.sent", body="{}")  # fmt: skip
    WebhookAttempt.objects.bulk_create([
        WebhookAttempt(workspace=workspace, endpoint=endpoint, message=message, event_id="m1",
                       event_type="campaign.sent", attempt=1, outcome="failed",
                       error="timed out", started_at=soon - timedelta(minutes=1)),
        WebhookAttempt(workspace=workspace, endpoint=endpoint, message=message, event_id="m1",
                       event_type="campaign.sent", attempt=2, outcome="succeeded",
                       status_code=204, latency_ms=35, response_headers={"server": "x"},
                       response_body="ok", started_at=soon),
    ])  # fmt: skip
    return {"plain": plain, "rich": rich, "tested": tested, "endpoint": endpoint}


ENDPOINTS = [
    "/api/v1/campaigns?page_size=50",
    "/api/v1/campaigns/{rich}",
    "/api/v1/campaigns/{plain}",
    "/api/v1/campaigns/{tested}",
    "/api/v1/notifications?page_size=50",
    "/api/v1/notifications/{notification}",
    "/api/v1/campaigns/{rich}/notifications?page_size=50",
    "/api/v1/campaigns/{rich}/jobs?page_size=50",
    "/api/v1/audit-logs?page_size=50",
    "/api/v1/audience/devices?page_size=50",
    "/api/v1/analytics/events?page_size=50",
    "/api/v1/webhooks/endpoints/{endpoint}/deliveries?page_size=50",
    "/api/v1/notifications?page_size=50&page=1",  # the deprecated page numbers
    "/api/v1/campaigns/{rich}/stats",
    "/api/v1/campaigns/{plain}/stats",
    "/api/v1/analytics/overview",
    "/api/v1/analytics/overview?interval=hour&timezone=America/St_Johns",
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_each_endpoint_answers_what_drf_answers(api, filled, path):
    notification = Notification.objects.filter(error_code="INVALID_ARGUMENT").get()
    url = path.format(notification=notification.pk, **{k: c.pk for k, c in filled.items()})
    fast = api.get(url)
    with drf_output():
        reference = api.get(url)
    assert fast.status_code == reference.status_code == 200, fast.content
    fast_body, reference_body = fast.json(), reference.json()
    if "results" in reference_body:
        assert len(reference_body["results"]) >= 2  # rows of several shapes were compared
        assert_same_rows(fast_body.pop("results"), reference_body.pop("results"))
    assert fast_body == reference_body
    assert fast.content == reference.content


def test_listed_contents_answer_what_drf_answers_from_the_models(filled):
    """The campaign list reads contents as rows (apps.campaigns.models.ListedContents), not
    model instances: the same JSON as DRF's from the instances, prefetched or not."""
    from apps.campaigns.models import Campaign
    from apps.campaigns.selectors import campaigns_for_listing
    from apps.campaigns.serializers import ContentSerializer

    ids = [campaign.pk for campaign in filled.values()]
    listed = list(campaigns_for_listing(Campaign.objects.filter(pk__in=ids)))
    assert sum(len(campaign.listed_contents) for campaign in listed) == 5
    for campaign in listed:
        instances = list(campaign.contents.order_by("position"))
        with drf_output():
            reference = ContentSerializer(instances, many=True).data
            assert_same_rows(ContentSerializer(campaign.listed_contents, many=True).data, reference)
        assert_same_rows(ContentSerializer(campaign.listed_contents, many=True).data, reference)
        not_prefetched = Campaign.objects.get(pk=campaign.pk).listed_contents
        assert not_prefetched == campaign.listed_contents
        assert [row.id for row in not_prefetched] == [content.pk for content in instances]
