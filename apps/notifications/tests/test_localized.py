"""Localized contents: each language of the workspace gets its own delivery, carrying its
copy; devices in other languages get the default language — judged per device by the fake
FCM's reach report."""

from datetime import UTC, datetime

import pytest

from apps.campaigns import services as campaigns
from apps.devices import topics
from apps.devices.services import registry
from apps.notifications import planning
from apps.notifications.models import Delivery, Notification
from apps.notifications.tests.test_recipient_zones import settle_subscriptions, token
from apps.workspaces import services as workspaces

pytestmark = pytest.mark.django_db

GERMAN = {"title": "Guten Morgen", "subtitle": "Der Kaffee geht auf uns"}


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.DEVICE_SYNC_COALESCE_SECONDS = 0
    settings.FCM_SUBSCRIPTIONS_PER_SECOND = 1000
    settings.PLAN_HORIZON_SECONDS = 5 * 24 * 3600


@pytest.fixture
def bilingual(connected_workspace, owner):
    workspaces.update_workspace(
        workspace=connected_workspace, actor=owner, languages=["en", "de"], default_language="en"
    )
    return connected_workspace


def register(workspace, languages: list[str], django_capture_on_commit_callbacks, zones=("UTC",)):
    items = [
        {"token": token(n), "time_zone": zones[n % len(zones)], "language": language,
         "platform": "ios", "topics": ["news"]}
        for n, language in enumerate(languages)
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        registry.register_batch(workspace_id=workspace.pk, payload={"devices": items})
    settle_subscriptions(workspace)


def create(workspace, owner, **fields):
    return campaigns.create_campaign(
        workspace=workspace, actor=owner, name="Hello", topic="news",
        contents=[{"title": "Good morning", "subtitle": "Coffee's on us",
                   "translations": {"de": GERMAN}}],
        **fields,
    )  # fmt: skip


def received(fake_fcm, project_id) -> dict[str, list[str]]:
    """token -> the titles it received."""
    titles: dict[str, list[str]] = {}
    for message in fake_fcm.messages(project_id):
        for reached in message["reached"]:
            titles.setdefault(reached, []).append(message["message"]["notification"]["title"])
    return titles


def test_each_language_gets_its_copy_once(
    bilingual, owner, fake_fcm, demo_account, run_due, django_capture_on_commit_callbacks
):
    languages = ["en-GB", "de-AT", "ja", "de", "fr-FR", "en"]
    register(bilingual, languages, django_capture_on_commit_callbacks)
    campaign = create(bilingual, owner)
    at = datetime(2027, 2, 1, 9, tzinfo=UTC)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=at,
                                timezone_name="UTC", now=datetime(2027, 1, 31, tzinfo=UTC))  # fmt: skip
    planned = {
        (d.slice, d.language, d.condition) for d in Delivery.objects.filter(campaign=campaign)
    }
    assert planned == {
        ("lang:en", "en", "'news' in topics && 'pushpilot-lang-en' in topics"),
        ("lang:de", "de", "'news' in topics && 'pushpilot-lang-de' in topics"),
    }
    run_due(at)
    titles = received(fake_fcm, demo_account["project_id"])
    expected = {"de": "Guten Morgen"}
    for n, language in enumerate(languages):
        want = expected.get(language.split("-")[0], "Good morning")
        assert titles[token(n)] == [want], (language, titles[token(n)])
    german = Notification.objects.get(delivery__language="de")
    assert (german.title, german.body) == (GERMAN["title"], GERMAN["subtitle"])


def test_by_zone_and_language(
    bilingual, owner, fake_fcm, demo_account, run_due, django_capture_on_commit_callbacks
):
    register(bilingual, ["en", "de", "en", "de"], django_capture_on_commit_callbacks,
             zones=("Europe/Berlin", "Europe/Berlin", "America/New_York", "America/New_York"))  # fmt: skip
    campaign = create(bilingual, owner, recipient_time_zone=True)
    campaigns.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=datetime(2027, 2, 1, 9),
        timezone_name="UTC", now=datetime(2027, 1, 31, tzinfo=UTC),
    )  # fmt: skip
    rows = {(d.slice, d.run_at) for d in Delivery.objects.filter(campaign=campaign)}
    assert rows == {
        ("tz:Europe/Berlin|lang:en", datetime(2027, 2, 1, 8, tzinfo=UTC)),
        ("tz:Europe/Berlin|lang:de", datetime(2027, 2, 1, 8, tzinfo=UTC)),
        ("tz:America/New_York|lang:en", datetime(2027, 2, 1, 14, tzinfo=UTC)),
        ("tz:America/New_York|lang:de", datetime(2027, 2, 1, 14, tzinfo=UTC)),
    }
    for run_at in sorted({run_at for _, run_at in rows}):
        run_due(run_at)
    titles = received(fake_fcm, demo_account["project_id"])
    assert [titles[token(n)] for n in range(4)] == [
        ["Good morning"], ["Guten Morgen"], ["Good morning"], ["Guten Morgen"]
    ]  # fmt: skip


def test_a_language_added_after_planning_gets_its_deliveries(
    bilingual, owner, fake_fcm, demo_account, run_due, django_capture_on_commit_callbacks
):
    register(bilingual, ["en", "de", "fr"], django_capture_on_commit_callbacks)
    campaign = create(bilingual, owner)
    at = datetime(2027, 2, 1, 9, tzinfo=UTC)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=at,
                                timezone_name="UTC", now=datetime(2027, 1, 31, tzinfo=UTC))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # French speakers move to their topic
        workspaces.update_workspace(workspace=bilingual, actor=owner, languages=["en", "de", "fr"])
    settle_subscriptions(bilingual)
    planning.refill(now=datetime(2027, 1, 31, 12, tzinfo=UTC))
    assert set(Delivery.objects.filter(campaign=campaign).values_list("slice", flat=True)) == {
        "lang:en", "lang:de", "lang:fr"
    }  # fmt: skip
    run_due(at)
    titles = received(fake_fcm, demo_account["project_id"])
    assert [titles[token(n)] for n in range(3)] == [
        ["Good morning"], ["Guten Morgen"], ["Good morning"]  # no French copy: the default's
    ]  # fmt: skip


def test_without_registered_devices_it_goes_out_whole(bilingual, owner):
    campaign = create(bilingual, owner)
    campaigns.schedule_campaign(
        campaign=campaign, actor=owner, scheduled_at=datetime(2027, 2, 1, 9, tzinfo=UTC),
        timezone_name="UTC", now=datetime(2027, 1, 31, tzinfo=UTC),
    )  # fmt: skip
    (delivery,) = Delivery.objects.filter(campaign=campaign)
    assert (delivery.slice, delivery.topic, delivery.language) == ("", "news", "")


@pytest.mark.parametrize(
    "translations,key",
    [
        ({"fr": {"title": "Bonjour"}}, "translations.fr"),  # not a workspace language
        ({"en": {"title": "Hello"}}, "translations.en"),  # the content's own language
        ({"de": {"title": "Hallo", "subtitle": "ü" * 1000}}, "translations.de"),  # too large
        ({"not a tag!": {"title": "x"}}, "translations"),
        ({"de": {"subtitle": "no title"}}, "translations"),
    ],
)
def test_bad_translations_are_400s(api, bilingual, translations, key):
    response = api.post(
        "/api/v1/campaigns",
        {"name": "x", "target": {"topic": "news"},
         "contents": [{"title": "Hello", "subtitle": "There", "translations": translations}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400, response.content
    errors = response.json()["error"]["details"]["contents"]
    first = errors[0] if isinstance(errors, list) else errors["0"]
    assert key in first, first


def test_translations_round_trip_and_leave_room_in_the_condition(api, bilingual):
    response = api.post(
        "/api/v1/campaigns",
        {"name": "x", "target": {"topic": "news"},
         "contents": [{"title": "Hello", "translations": {"DE": GERMAN}}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["contents"][0]["translations"] == {"de": GERMAN}
    five = " && ".join(f"'t{i}' in topics" for i in range(5))
    four = " && ".join(f"'t{i}' in topics" for i in range(4))
    for condition, zone, status in ((five, False, 400), (four, False, 201), (four, True, 400)):
        response = api.post(
            "/api/v1/campaigns",
            {"name": "x", "target": {"condition": condition}, "recipient_time_zone": zone,
             "contents": [{"title": "Hello", "translations": {"de": GERMAN}}]},
            format="json",
        )  # fmt: skip
        assert response.status_code == status, (condition, zone, response.content)
    assert topics.language_topic("de") == "pushpilot-lang-de"
