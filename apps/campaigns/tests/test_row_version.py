"""A campaign's row_version is raised by the database on every write of the campaign or of one
of its contents (migration 0009's triggers), whatever writes it: the campaign list keeps
representations per version (apps.common.representations), so a write that did not raise it
would leave the list showing the old campaign."""

from django.db import connection

from apps.campaigns.models import Campaign, CampaignContent


def version_of(campaign) -> int:
    return Campaign.objects.values_list("row_version", flat=True).get(pk=campaign.pk)


def raw_update(sql, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, [Campaign._meta.pk.get_db_prep_value(p, connection) for p in params])


def test_every_write_of_a_campaign_raises_its_version(make_campaign):
    campaign = make_campaign()
    start = version_of(campaign)
    read_before = Campaign.objects.get(pk=campaign.pk)

    campaign.name = "Renamed"
    campaign.save()
    assert version_of(campaign) == start + 1
    # An instance read before that save writes its old row_version back: the database
    # raises the stored one all the same, so a version is never shown twice.
    read_before.description = "Changed"
    read_before.save()
    assert version_of(campaign) == start + 2
    Campaign.objects.filter(pk=campaign.pk).update(next_run_at=None)
    assert version_of(campaign) == start + 3
    raw_update("UPDATE campaigns_campaign SET name = 'Raw' WHERE id = %s", campaign.pk)
    assert version_of(campaign) == start + 4
    Campaign.objects.bulk_update([campaign], ["sound"])
    assert version_of(campaign) == start + 5


def test_every_write_of_its_contents_raises_the_campaign_version(make_campaign):
    campaign, other = make_campaign(), make_campaign(name="Other")
    start, other_start = version_of(campaign), version_of(other)
    content = campaign.contents.get()

    content.title = "New title"
    content.save()
    assert version_of(campaign) == start + 1
    CampaignContent.objects.bulk_create(
        [CampaignContent(campaign=campaign, position=p, title=f"#{p}") for p in (1, 2)]
    )
    assert version_of(campaign) == start + 3  # one per row
    CampaignContent.objects.filter(campaign=campaign, position__gt=0).delete()
    assert version_of(campaign) == start + 5
    raw_update("UPDATE campaigns_campaigncontent SET subtitle = 'raw' WHERE id = %s", content.pk)
    assert version_of(campaign) == start + 6
    # A content moved to another campaign changes both.
    CampaignContent.objects.filter(pk=content.pk).update(campaign=other, position=7)
    assert (version_of(campaign), version_of(other)) == (start + 7, other_start + 1)


def test_deleting_a_user_a_campaign_names_raises_its_version(make_campaign, make_user):
    campaign = make_campaign()
    approver = make_user()
    Campaign.objects.filter(pk=campaign.pk).update(approved_by=approver)
    before = version_of(campaign)

    approver.delete()  # on_delete=SET_NULL: an UPDATE of the campaign

    campaign.refresh_from_db()
    assert campaign.approved_by_id is None
    assert version_of(campaign) == before + 1
