"""Reads of campaigns, shared by the API and the services."""

import uuid
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from apps.campaigns import recurrence
from apps.campaigns.models import PREFETCHED_CONTENTS, Campaign, SendPolicy
from apps.common.compiled import CompiledFirst
from apps.common.errors import NotFound
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import parse_uuid


def campaigns_for_listing(queryset: QuerySet[Campaign] | None = None) -> QuerySet[Campaign]:
    """Everything the campaign serializer reads, in a fixed number of queries whatever the
    page size: the campaign rows, plus one query for all contents (`listed_contents`). No
    join to the creator: the serializer shows `created_by` as its id only (the join cost ~1 ms
    per 50 rows)."""
    queryset = Campaign.objects.all() if queryset is None else queryset
    return queryset.prefetch_related(Prefetch("listed_contents", to_attr=PREFETCHED_CONTENTS))


def get_campaign(*, workspace, campaign_id) -> Campaign:
    campaign = campaigns_for_listing(Campaign.objects.filter(workspace=workspace, pk=campaign_id))
    found = campaign.first()
    if found is None:
        raise NotFound("Campaign not found.")
    return found


def campaigns_of(workspace_id, campaign_id) -> QuerySet[Campaign]:
    """The workspace's live campaign with this id (the default manager leaves out deleted
    ones), as a queryset: what every read of one campaign filters by."""
    return Campaign.objects.filter(workspace_id=workspace_id, pk=campaign_id)


# Every page of a campaign's notifications, jobs or stats checks the campaign first: compiled
# once per connection (CompiledFirst), the check costs a query's execution, not its compiling.
# The pages need only its id: 45 columns converted and built into an instance cost more than
# the query.
_first_campaign_of = CompiledFirst(
    campaigns_of, workspace_id=Workspace._meta.pk, campaign_id=Campaign._meta.pk
)
_live_campaign_id = CompiledFirst(
    lambda **ids: campaigns_of(**ids).values_list("pk", flat=True),
    workspace_id=Workspace._meta.pk,
    campaign_id=Campaign._meta.pk,
)


def campaign_of(workspace, campaign_id) -> Campaign | None:
    """The workspace's live campaign with this id (any text: not an id is no campaign), its
    columns only (no contents), or None."""
    campaign_uuid = parse_uuid(campaign_id)
    if campaign_uuid is None:
        return None
    return _first_campaign_of(workspace_id=workspace.pk, campaign_id=campaign_uuid)


def live_campaign_id(workspace, campaign_id) -> uuid.UUID | None:
    """campaign_of's id alone (the campaign's pages: what they filter by)."""
    campaign_uuid = parse_uuid(campaign_id)
    if campaign_uuid is None:
        return None
    return _live_campaign_id(workspace_id=workspace.pk, campaign_id=campaign_uuid)


def schedule_of(campaign: Campaign) -> recurrence.Schedule | None:
    """The stored schedule as a recurrence.Schedule, or None when no start is set."""
    if not campaign.scheduled_local:
        return None
    return recurrence.build_schedule(
        start=datetime.fromisoformat(campaign.scheduled_local),
        timezone_name=campaign.timezone,
        rrule=campaign.rrule or None,
        exclusion_dates=campaign.exclusion_dates or (),
    )


def lock_campaign(campaign_id) -> Campaign:
    """The campaign row, locked for the rest of the transaction (PostgreSQL row lock; on
    SQLite the IMMEDIATE transaction already serialises writers)."""
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None:  # deleted by a concurrent request
        raise NotFound("Campaign not found.")
    return campaign


def send_policy(workspace_id) -> SendPolicy | None:
    """The workspace's send policies, or None when it has none."""
    return SendPolicy.objects.filter(workspace_id=workspace_id).first()


def send_policy_of(campaign: Campaign) -> SendPolicy | None:
    """The campaign's workspace's send policies, read once per campaign instance (the
    planner asks for every occurrence it plans)."""
    if not hasattr(campaign, "_send_policy"):
        campaign._send_policy = send_policy(campaign.workspace_id)
    return campaign._send_policy


def rate_caps() -> dict[str, int]:
    """For the dispatcher: workspace id (text) -> its send-rate cap per minute, for every
    live workspace that has one (usually few rows; the caller keeps it for a tick)."""
    rows = SendPolicy.objects.filter(
        rate_limit_per_minute__isnull=False, workspace__is_deleted=False
    ).values_list("workspace_id", "rate_limit_per_minute")
    return {str(workspace_id): cap for workspace_id, cap in rows}
