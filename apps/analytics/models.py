"""Analytics storage: ingest keys, the raw event log, and hourly rollups.

Reads (campaign stats, dashboards) only ever touch `EventRollup`; `AnalyticsEvent` is the
append-only log that dedupes client retries and lets rollups be rebuilt.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.common.fields import JSONField
from apps.common.models import BaseModel

# Rollup rows need a concrete value in every key column: NULLs never conflict in a unique
# index (on SQLite and PostgreSQL alike), so `ON CONFLICT DO UPDATE` could not find the row.
# "No campaign" / "no content" is the nil UUID.
NIL_UUID = uuid.UUID(int=0)


class IngestKey(BaseModel):
    """A write-only credential an app ships with to report events for one workspace.

    Only the SHA-256 of the secret is stored; `prefix` (the secret's first characters) is
    what people see to tell keys apart. A revoked key never comes back; rotating replaces
    the secret (and prefix) of the same key.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="ingest_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=32)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "created_at"], name="ingestkey_ws_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Platform(models.TextChoices):
    IOS = "ios", "iOS"
    ANDROID = "android", "Android"
    WEB = "web", "Web"
    OTHER = "other", "Other"


class AnalyticsEvent(BaseModel):
    """One event reported by an app. Unique per (workspace, occurred_at, client event id): a
    client that retries a batch (the same events, unchanged) cannot count anything twice.

    Campaign, content and notification are plain ids, not foreign keys: this is a high-volume
    append-only log, checked against the workspace when ingested, that must not be touched
    (or locked) when a campaign or notification is deleted.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # BaseModel indexes created_at; on this table that index would cost every insert and
    # serve no query (reads go to the rollups), so the field is redeclared without it.
    created_at = models.DateTimeField(auto_now_add=True)
    event_id = models.CharField(max_length=64)
    type = models.CharField(max_length=64)
    notification_id = models.UUIDField(null=True, blank=True)
    campaign_id = models.UUIDField(null=True, blank=True)
    content_id = models.UUIDField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    platform = models.CharField(max_length=16, choices=Platform.choices, blank=True, default="")
    properties = JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            # An event is identified by its client id and occurred_at (a retry resends both
            # unchanged): on PostgreSQL the table is partitioned by day of occurred_at, and a
            # unique index must hold the partition key. Also the index every query of this
            # table starts with: per-workspace time ranges and the events list.
            models.UniqueConstraint(
                fields=["workspace", "occurred_at", "event_id"], name="event_ws_occurred_client_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


ROLLUP_SHARDS = 8


class EventRollup(BaseModel):
    """How many of one kind of event happened in one UTC hour, per campaign and content.

    `event_type` is an app event type (delivered, opened, clicked, dismissed,
    conversion:<name>) or a notification outcome (sent, failed). Rows are only ever
    incremented, by one upsert per distinct bucket (apps.analytics.rollups).

    A bucket is split over ROLLUP_SHARDS rows (`shard`, picked at random per write): apps
    report the same few buckets at once (the last hour of the latest campaigns), and one row
    per bucket made every concurrent batch wait for the row locks of the one before it.
    Reads add the shards up (they SUM anyway).
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    campaign_id = models.UUIDField(default=NIL_UUID)
    content_id = models.UUIDField(default=NIL_UUID)
    event_type = models.CharField(max_length=64)
    bucket = models.DateTimeField(help_text="Start of the UTC hour.")
    shard = models.PositiveSmallIntegerField(default=0)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # The upsert's conflict target; also serves campaign stats (workspace, campaign).
            models.UniqueConstraint(
                fields=["workspace", "campaign_id", "content_id", "event_type", "bucket", "shard"],
                name="rollup_bucket_unique",
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="rollup_count_non_negative"),
        ]
        indexes = [
            # The overview: one workspace, a time range.
            models.Index(fields=["workspace", "bucket"], name="rollup_ws_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} x{self.count} at {self.bucket:%Y-%m-%dT%H}Z"
