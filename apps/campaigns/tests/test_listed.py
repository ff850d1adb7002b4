"""The campaign list keeps each campaign's representation per row version
(apps.common.representations): what it shows must be what DRF shows now, after any write."""

import orjson
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns.api import listed_campaigns
from apps.campaigns.models import Campaign, CampaignContent
from apps.campaigns.selectors import campaigns_for_listing
from apps.campaigns.serializers import CampaignSerializer
from apps.common.fastread import drf_output
from apps.common.representations import VersionedRepresentations

URL = "/api/v1/campaigns"


def listed(api, **params):
    response = api.get(URL, params)
    assert response.status_code == 200, response.content
    return response


def assert_as_drf(api, **params):
    fast = listed(api, **params)
    with drf_output():
        reference = listed(api, **params)
    assert fast.content == reference.content
    return fast.json()["results"]


def test_the_list_shows_every_write_however_it_is_made(api, make_campaign):
    campaign = make_campaign()
    assert_as_drf(api)
    assert_as_drf(api)  # the second from what the first kept

    Campaign.objects.filter(pk=campaign.pk).update(name="Renamed by update()")
    assert assert_as_drf(api)[0]["name"] == "Renamed by update()"
    CampaignContent.objects.filter(campaign=campaign).update(title="Retitled")
    assert assert_as_drf(api)[0]["contents"][0]["title"] == "Retitled"
    with connection.cursor() as cursor:
        cursor.execute("UPDATE campaigns_campaigncontent SET subtitle = 'By SQL'")
    assert assert_as_drf(api)[0]["contents"][0]["subtitle"] == "By SQL"
    content_id = str(campaign.contents.get().pk)
    patched = api.patch(
        f"{URL}/{campaign.pk}",
        {"contents": [{"id": content_id, "title": "Kept"}, {"title": "Added"}]},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    shown = assert_as_drf(api)[0]
    assert [c["title"] for c in shown["contents"]] == ["Kept", "Added"]
    assert shown == {key: patched.json()[key] for key in shown}  # the detail's fields, as now
    api.delete(f"{URL}/{campaign.pk}")
    assert assert_as_drf(api) == []


def test_a_page_shown_before_reads_only_its_versions(api, make_campaign):
    campaigns = [make_campaign(name=f"c{index}") for index in range(3)]
    listed(api)

    with CaptureQueriesContext(connection) as queries:
        listed(api)
    assert not any("campaigns_campaigncontent" in q["sql"] for q in queries.captured_queries)

    CampaignContent.objects.filter(campaign=campaigns[1]).update(title="Changed")
    with CaptureQueriesContext(connection) as queries:
        results = listed(api).json()["results"]
    reads = [q["sql"] for q in queries.captured_queries if "campaigns_campaigncontent" in q["sql"]]
    assert len(reads) == 1  # the changed campaign's contents, nothing else
    assert [r["contents"][0]["title"] for r in results] == [
        "Spring is here",
        "Changed",
        "Spring is here",
    ]


def test_date_times_are_kept_per_output_zone(api, make_campaign):
    make_campaign()
    in_utc = assert_as_drf(api)[0]["created_at"]
    with timezone.override("Asia/Kolkata"):
        in_kolkata = assert_as_drf(api)[0]["created_at"]
    assert in_utc.endswith("Z") and in_kolkata.endswith("+05:30")
    assert assert_as_drf(api)[0]["created_at"] == in_utc


def test_filters_and_orderings_page_the_kept_representations(api, make_campaign):
    for name in ("Beta", "Alpha", "Gamma"):
        make_campaign(name=name)
    listed(api)
    assert [c["name"] for c in assert_as_drf(api, ordering="name")] == ["Alpha", "Beta", "Gamma"]
    assert [c["name"] for c in assert_as_drf(api, search="amm")] == ["Gamma"]
    page = assert_as_drf(api, ordering="name", page=2, page_size=2)
    assert [c["name"] for c in page] == ["Gamma"]
    assert listed(api, page_size=2).json()["count"] == 3


def test_an_indented_answer_writes_the_kept_representations_too(api, make_campaign):
    make_campaign()
    compact = listed(api)
    indented = api.get(URL, HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200
    assert b"\n  " in indented.content
    assert indented.json() == compact.json()


def test_the_kept_representations_are_bounded_and_a_vanished_row_is_left_out(
    workspace, make_campaign
):
    kept = VersionedRepresentations(CampaignSerializer, size=2)
    campaigns = [make_campaign(name=f"c{index}") for index in range(3)]
    queryset = campaigns_for_listing(Campaign.objects.filter(workspace=workspace))
    versions = list(queryset.values_list("pk", "row_version"))

    shown = kept.of(versions, queryset)
    assert len(kept._entries) == 2
    assert sorted(item.json for item in kept.of(versions, queryset)) == sorted(
        item.json for item in shown
    )
    # A campaign not kept at its version is loaded; one gone meanwhile is left out.
    gone = campaigns[0].pk
    Campaign.objects.filter(pk=gone).delete()
    others = [(pk, version) for pk, version in versions if pk != gone]
    shown = kept.of([(gone, 10**6), *others], queryset)
    assert [orjson.loads(item.json)["id"] for item in shown] == [str(pk) for pk, _ in others]


def test_the_list_keeps_one_entry_per_campaign_version_and_zone(api, make_campaign):
    campaign = make_campaign()
    listed(api)
    listed(api)
    assert [key[1:] for key in listed_campaigns._entries if key[0] == campaign.pk] == [
        (Campaign.objects.get(pk=campaign.pk).row_version, timezone.get_current_timezone())
    ]
