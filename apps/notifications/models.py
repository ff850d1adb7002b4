"""The sending engine's tables: occurrences, their deliveries, and the notifications sent.

    Campaign ─< Occurrence ─< Delivery ─< Notification
                (an instant     (one send to one    (one content of one delivery,
                 of the plan)    target at run_at)   exactly once)

Exactly once per (campaign, occurrence, slice, content) is held by the database: an
occurrence is unique per (campaign, at), a delivery per (occurrence, slice), a notification
per (delivery, content) (with its created_at, which is fixed per delivery: on PostgreSQL the
table is partitioned by day of created_at, apps.common.partitions). Every write to these tables is made by apps.notifications
(planning, dispatcher, engine); other apps call those modules.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.common.fields import JSONField
from apps.common.models import BaseModel


class Occurrence(BaseModel):
    """One instant of a campaign's schedule. Created by the planner, ahead of time; it owns
    the deliveries that send it (one today; one per zone, language or variant later).

    `is_last` marks the schedule's final instant: once it exists, the plan is complete.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="occurrences"
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="occurrences"
    )
    at = models.DateTimeField()
    local = models.CharField(max_length=32, help_text="The wall-clock time, with its offset.")
    is_last = models.BooleanField(default=False)

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "at"], name="occurrence_campaign_at"),
        ]
        indexes = [
            models.Index(fields=["campaign"], condition=Q(is_last=True), name="occurrence_last"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} at {self.at:%Y-%m-%dT%H:%M:%SZ}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for due_at
    QUEUED = "queued", "Queued"  # claimed by a dispatcher, handed to the broker
    RUNNING = "running", "Running"  # a worker holds the lease and is sending
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"  # the campaign was cancelled before it ran
    SKIPPED = "skipped", "Skipped"  # not runnable when a worker took it (or missed)


ACTIVE_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.RUNNING)
WAITING_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.QUEUED)
FINISHED_STATUSES = (
    DeliveryStatus.COMPLETED,
    DeliveryStatus.FAILED,
    DeliveryStatus.CANCELLED,
    DeliveryStatus.SKIPPED,
)


def fcm_target(topic: str, condition: str) -> dict[str, str]:
    """Where FCM sends a delivery's messages: its topic, else its condition."""
    return {"topic": topic} if topic else {"condition": condition}


class Delivery(BaseModel):
    """One send of an occurrence to one target at one time: what the engine claims and runs.

    Ownership: a dispatcher's claim gives the delivery a new `claim_token`; every later write
    (start, lease renewal, each notification's outcome, the finish) is conditional on it, so
    a worker whose lease expired and was superseded changes nothing. `attempts` counts the
    times a worker started it, never the claims: waiting for a worker costs nothing.

    `run_at` is when it should reach FCM (what lateness is measured against); `due_at` is
    when a dispatcher may claim it next (run_at, or later for a retry).
    """

    # Every state change of a delivery rewrites each of its index entries (its status is in
    # the partial indexes' conditions, so no update is HOT): only the indexes below exist.
    # The foreign keys' own indexes would repeat their prefixes, and nothing reads by
    # created_at.
    created_at = models.DateTimeField(auto_now_add=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    occurrence = models.ForeignKey(
        Occurrence, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # Which part of the occurrence this is ("" for the whole audience; a zone, language or
    # variant once deliveries are split).
    slice = models.CharField(max_length=128, blank=True, default="")
    # The language whose copy it carries ("": the contents' own text).
    language = models.CharField(max_length=35, blank=True, default="")
    # An experiment's: the position of the one content it sends ("0".."3"), or "winner" (the
    # rest of the audience, after the test window); "": every content.
    variant = models.CharField(max_length=8, blank=True, default="")
    topic = models.CharField(max_length=900, blank=True, default="")
    condition = models.CharField(max_length=1000, blank=True, default="")
    run_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    claim_token = models.UUIDField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # The first start, kept across retries: every notification of the delivery is created at
    # this instant, so all attempts agree on the partition key of its rows (see Notification).
    first_started_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["workspace", "run_at"], name="delivery_ws_run_at"),
            # The claim: pending AND due_at <= now, grouped by workspace for fairness.
            models.Index(
                fields=["due_at"],
                include=["workspace"],
                condition=Q(status=DeliveryStatus.PENDING),
                name="delivery_pending_due",
            ),
            models.Index(
                fields=["workspace", "due_at"],
                condition=Q(status=DeliveryStatus.PENDING),
                name="delivery_pending_ws_due",
            ),
            # The reaper (expired leases) and the dispatcher's backlog count.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="delivery_active_lease",
            ),
            # A campaign's deliveries, latest first, and its progress.
            # id: the cursor's tie-breaker (GET /campaigns/{id}/jobs), so a page is one range scan.
            models.Index(fields=["campaign", "run_at", "id"], name="delivery_campaign_run_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["occurrence", "slice"], name="delivery_occurrence_slice"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="delivery_status_valid"
            ),
            models.CheckConstraint(
                condition=(Q(topic="") & ~Q(condition="")) | (~Q(topic="") & Q(condition="")),
                name="delivery_exactly_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.campaign_id} at {self.run_at:%Y-%m-%dT%H:%M:%SZ}"

    @property
    def target(self) -> dict[str, str]:
        return fcm_target(self.topic, self.condition)


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not handed to FCM (yet, or again after a retryable error)
    SENDING = "sending", "Sending"  # handed to FCM; the outcome is not recorded yet
    SENT = "sent", "Sent"  # FCM accepted it (fcm_message_id)
    FAILED = "failed", "Failed"  # refused for good, or given up (error_code, error_message)


FINAL_NOTIFICATION_STATUSES = (NotificationStatus.SENT, NotificationStatus.FAILED)


class Notification(BaseModel):
    """One content of one delivery: exactly one row per (delivery, content).

    A re-run finds the row and skips what is already sent; the row's id is the collapse
    identity FCM carries (Android tag, apns-collapse-id, web-push Topic), so a message sent
    twice after a crash shows once on a device. `claim_token` is the delivery claim that owns
    the row: writes from a superseded claim match no row.
    """

    # As for deliveries: each outcome rewrites every index entry, so no index repeats another's
    # prefix (the foreign keys' own, created_at's). The engine sets it to the delivery's
    # first_started_at (not the insert's clock): on PostgreSQL it is the partition key and part
    # of the (delivery, content) uniqueness, so every attempt must write the same value.
    created_at = models.DateTimeField(default=timezone.now)
    workspace = models.ForeignKey(
        "workspaces.Workspace",
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    content = models.ForeignKey(
        "campaigns.CampaignContent",
        null=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    position = models.PositiveSmallIntegerField(default=0)
    # What was sent, as sent: contents can be edited later (after an unschedule).
    title = models.CharField(max_length=200)
    body = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    claim_token = models.UUIDField(null=True, blank=True)
    fcm_message_id = models.CharField(max_length=255, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # created_at: a unique index of a partitioned table must hold the partition key;
            # it is one value per delivery, so this is still one row per (delivery, content).
            models.UniqueConstraint(
                fields=["delivery", "content", "created_at"], name="notification_delivery_content"
            ),
            models.CheckConstraint(
                condition=Q(status__in=NotificationStatus.values), name="notification_status_valid"
            ),
        ]
        indexes = [
            # The cursor pages' keys (GET /notifications, GET /campaigns/{id}/notifications).
            models.Index(fields=["workspace", "created_at", "id"], name="notif_ws_created_id"),
            models.Index(fields=["campaign", "created_at", "id"], name="notif_campaign_created_id"),
            models.Index(fields=["workspace", "status", "sent_at"], name="notif_ws_status_sent"),
            models.Index(fields=["campaign", "status"], name="notif_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"notification {self.pk} ({self.status})"


class DispatcherHeartbeat(BaseModel):
    """Each dispatcher process's last completed loop round, for /readyz and operators."""

    name = models.CharField(max_length=255, unique=True)  # host:pid
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%dT%H:%M:%SZ}"


class TopicSendLog(BaseModel):
    """The frequency cap's record (apps.notifications.policies): the recent sends to one app
    topic of a workspace, as [[occurrence id, occurrence instant (ISO)], ...], kept for the
    cap's window. One occurrence is one send, however many deliveries (zones, languages,
    variants) carry it. The row is also the lock two deliveries to the topic take in turn
    (SELECT ... FOR UPDATE), so they cannot both pass the cap's last slot."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    topic = models.CharField(max_length=900)
    sends = JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "topic"], name="topic_send_log_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} in {self.workspace_id}: {len(self.sends)} sends"


class SendRateWindow(BaseModel):
    """The send-rate cap's record (apps.notifications.policies): how many deliveries the
    dispatchers claimed for a capped workspace in each second of the last minute, as
    [[epoch second, count], ...]. A dispatcher locks the row (SKIP LOCKED) while it claims
    for the workspace, so two cannot both spend the same room."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    claims = JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"send rate of {self.workspace_id}"
