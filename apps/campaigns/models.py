from operator import attrgetter

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from apps.common.compiled import CompiledRows
from apps.common.fields import JSONField
from apps.common.models import BaseModel, SoftDeleteModel
from apps.integrations.firebase.validation import MAX_TTL_SECONDS

# The largest value every database stores in an integer column (PostgreSQL's `integer`).
MAX_INTEGER = 2**31 - 1


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    # Waiting for an admin's approval before it is scheduled (its audience is over the
    # workspace's approval threshold; see apps.campaigns.services.approvals).
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class Priority(models.TextChoices):
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"


class QuietHours(models.TextChoices):
    """What a campaign's delivery that falls inside the workspace's quiet hours does."""

    DEFER = "defer", "Move to the end of the window"
    SKIP = "skip", "Skip"
    IGNORE = "ignore", "Send anyway (admins only: transactional messages)"


# The delivery options, named once: services, serializers and the sender read this list.
DELIVERY_OPTION_FIELDS = (
    "priority",
    "ttl_seconds",
    "collapse_key",
    "android_channel_id",
    "sound",
    "badge",
)


# Where campaigns_for_listing() leaves each campaign's contents (a plain list, see
# ListedContents).
PREFETCHED_CONTENTS = "_prefetched_contents"


class ListedContents:
    """`campaign.listed_contents`: the campaign's contents in position order, for reading
    (the API's representation), as rows of all their columns — named tuples, read like the
    model's attributes (`row.title`, `row.campaign_id`) — not model instances.

    Prefetched for a page by `Prefetch("listed_contents", to_attr=PREFETCHED_CONTENTS)`
    (campaigns_for_listing): one query for the page, through Django's prefetch protocol
    (`get_prefetch_querysets`). Rows instead of instances, and no related manager, because a
    page of 50 campaigns has ~100 contents: building them as instances and prefetching them
    into the manager cost ~2.2 ms of CPU, the rows ~0.8 ms. Whatever changes contents uses the
    model (`campaign.contents`)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, campaign, owner=None):
        if campaign is None:
            return self
        rows = campaign.__dict__.get(PREFETCHED_CONTENTS)
        if rows is None:  # not prefetched: one query
            rows = compiled_content_rows([campaign.pk])
        return rows

    def is_cached(self, campaign) -> bool:
        return PREFETCHED_CONTENTS in campaign.__dict__

    def get_prefetch_querysets(self, instances, querysets=None):
        if querysets:
            raise ValueError("listed_contents is prefetched without a queryset.")
        return (
            compiled_content_rows([campaign.pk for campaign in instances]),
            attrgetter("campaign_id"),  # a row's campaign ...
            attrgetter("pk"),  # ... matched with the campaign's key
            False,  # many rows per campaign
            PREFETCHED_CONTENTS,
            False,
        )


def content_rows(campaign_ids):
    """The contents of these campaigns in position order, every column, as named tuples."""
    columns = [field.attname for field in CampaignContent._meta.concrete_fields]
    return (
        CampaignContent.objects.filter(campaign_id__in=campaign_ids)
        .order_by("position")
        .values_list(*columns, named=True)
    )


class Campaign(SoftDeleteModel):
    """A push campaign: who receives it (one FCM topic or condition), what it says (ordered
    contents), how it is delivered, and when (a wall-clock anchor in an IANA zone, with an
    optional RRULE). `status` changes only through apps.campaigns.state_machine."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="campaigns"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )

    # Target: exactly one of the two (a database constraint holds it too).
    topic = models.CharField(max_length=900, blank=True, default="")
    condition = models.CharField(max_length=1000, blank=True, default="")

    # Delivery options (FCM v1 platform fields a sender expects to control); the types and
    # limits here are also the API's (CampaignWriteSerializer is built from them).
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.HIGH)
    ttl_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_TTL_SECONDS)]
    )
    collapse_key = models.CharField(max_length=100, blank=True, default="")
    android_channel_id = models.CharField(max_length=100, blank=True, default="")
    sound = models.CharField(max_length=100, blank=True, default="")
    badge = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_INTEGER)]
    )

    # Schedule. `scheduled_local` is the wall-clock anchor ("2007-03-11T02:30:00") that
    # recurrence expands from; `scheduled_at` is the instant it maps to (for filtering and
    # display). They differ from what the user typed only for a time inside a DST gap.
    scheduled_at = models.DateTimeField(null=True, blank=True)
    scheduled_local = models.CharField(max_length=26, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC")
    rrule = models.CharField(max_length=500, blank=True, default="")
    exclusion_dates = JSONField(default=list, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # Each recipient gets it at the schedule's wall-clock time in their own zone (one delivery
    # per zone with registered devices, to `target && <zone topic>`), not at one instant.
    recipient_time_zone = models.BooleanField(default=False)
    # An A/B test of its contents (see apps.campaigns.experiments): {"metric", "window_seconds",
    # "buckets_per_variant", "fallback", "min_sample"}; null: every content to everyone.
    experiment = JSONField(null=True, blank=True)
    # The decision, once made: winner, reason, rates with intervals, p-values, samples.
    experiment_result = JSONField(null=True, blank=True)
    # Catch-up after downtime: a run that starts more than this late is recorded as skipped
    # instead of sent (a "good morning" at 3 pm helps nobody). Null: always send, however late.
    catch_up_window_seconds = models.PositiveIntegerField(null=True, blank=True, default=3600)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # Inside the workspace's quiet hours (SendPolicy): defer, skip, or (admins) ignore them.
    quiet_hours = models.CharField(
        max_length=8, choices=QuietHours.choices, default=QuietHours.DEFER
    )
    # Approvals (status pending_approval): who asked and when; who approved and when (also
    # set when an admin schedules it directly); a rejection's reason.
    approval_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approval_requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=1000, blank=True, default="")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    duplicated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Raised by the database on every write of the row or of one of its contents (triggers,
    # migration 0009), whoever writes — a save(), the engine's update()s, a SET_NULL of a
    # deleted user: the list keeps each campaign's representation per version
    # (apps.common.representations). What Django writes here is overwritten.
    row_version = models.BigIntegerField(default=0, db_default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The list endpoint: default order, the status filter, the schedule filters.
            models.Index(fields=["workspace", "created_at"], name="campaign_ws_created"),
            models.Index(fields=["workspace", "status", "created_at"], name="campaign_ws_status"),
            models.Index(fields=["workspace", "scheduled_at"], name="campaign_ws_scheduled"),
            models.Index(fields=["workspace", "next_run_at"], name="campaign_ws_next_run"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(topic="") & ~Q(condition="")) | (~Q(topic="") & Q(condition="")),
                name="campaign_exactly_one_target",
            ),
            models.CheckConstraint(
                condition=Q(status__in=CampaignStatus.values), name="campaign_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self) -> dict[str, str]:
        return {"topic": self.topic} if self.topic else {"condition": self.condition}

    listed_contents = ListedContents()


class CampaignContent(BaseModel):
    """One message of a campaign. `subtitle` is sent as the notification body."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="contents")
    position = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200)
    subtitle = models.CharField(max_length=1000, blank=True, default="")
    image_url = models.URLField(max_length=1000, blank=True, default="")
    data = JSONField(default=dict, blank=True)
    link = models.URLField(max_length=1000, blank=True, default="")
    analytics_label = models.CharField(max_length=50, blank=True, default="")
    # Other languages of the workspace: {"de": {"title": ..., "subtitle": ...}}. The content's
    # own title and subtitle are in the workspace's default language.
    translations = JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "position"],
                name="campaign_content_position_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}#{self.position}: {self.title}"


# content_rows(ids) as a list, compiled once per connection and page size: building and
# compiling the `IN (50 ids)` statement was ~3.9M of a campaign page's ~28M instructions.
compiled_content_rows = CompiledRows(
    content_rows, CampaignContent._meta.get_field("campaign").target_field
)


class QuietHoursMode(models.TextChoices):
    WORKSPACE = "workspace", "In the workspace's time zone"
    RECIPIENT = "recipient", "In each recipient's time zone"


class SendPolicy(BaseModel):
    """A workspace's send policies (README "Send policies"); at most one row per workspace,
    none meaning no policy. Owned by campaigns: scheduling enforces them (the plan, the
    frequency cap, approvals) and the engine reads them (apps.campaigns.policies). A
    separate table, not workspace columns: the engine joins it only where it needs it and
    the workspace row stays the workspaces app's."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="send_policy"
    )
    # Quiet hours: local times [start, end), wrapping midnight when start > end; both or none.
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    quiet_hours_mode = models.CharField(
        max_length=16, choices=QuietHoursMode.choices, default=QuietHoursMode.WORKSPACE
    )
    # At most `max_sends` sends to any app topic in any rolling `window_hours`; both or none.
    frequency_cap_max_sends = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(10_000)]
    )
    frequency_cap_window_hours = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(24 * 31)]
    )
    # Deliveries the engine starts per rolling minute for this workspace; null: no cap.
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(1_000_000)]
    )
    # Campaigns whose audience estimate (devices) is over this need an admin's approval.
    approval_threshold = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_INTEGER)]
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "send policies"

    def __str__(self) -> str:
        return f"send policy of {self.workspace_id}"

    @property
    def has_quiet_hours(self) -> bool:
        return self.quiet_hours_start is not None and self.quiet_hours_end is not None

    @property
    def has_frequency_cap(self) -> bool:
        return bool(self.frequency_cap_max_sends and self.frequency_cap_window_hours)
