"""The device registry (owned by this app: only its services write these tables).

A device's `topics` is where it should be; `subscribed` is where FCM has confirmed it is.
The two differ while a change waits for the subscription sync (`needs_sync`), which claims
devices (`sync_claim`, `sync_claimed_at`) so that two syncs never work on one device.
The audience counts (`AudienceProfile`, `TopicAudience`) follow `topics` of active devices
and change in the same transaction as the devices they count.
"""

from django.db import models
from django.db.models import Q

from apps.common.fields import JSONField
from apps.common.models import BaseModel


class Platform(models.TextChoices):
    ANDROID = "android", "Android"
    IOS = "ios", "iOS"
    WEB = "web", "Web"


class DeviceStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    # FCM said the token is gone (NOT_FOUND) or was never valid (INVALID_ARGUMENT).
    RETIRED = "retired", "Retired"
    # The app unregistered it: it leaves its topics, then the row is deleted.
    REMOVED = "removed", "Removed"


class Device(BaseModel):
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    token_digest = models.CharField(max_length=64)
    encrypted_token = models.TextField()
    token_prefix = models.CharField(max_length=12)
    platform = models.CharField(max_length=16, choices=Platform.choices)
    time_zone = models.CharField(max_length=64)
    language = models.CharField(max_length=35)  # as the device reported it (normalized)
    app_version = models.CharField(max_length=64, blank=True, default="")
    app_topics = JSONField(default=list)
    bucket = models.PositiveSmallIntegerField()
    topics = JSONField(default=list)
    subscribed = JSONField(default=list)
    status = models.CharField(
        max_length=16, choices=DeviceStatus.choices, default=DeviceStatus.ACTIVE
    )
    retired_reason = models.CharField(max_length=64, blank=True, default="")
    needs_sync = models.BooleanField(default=True)
    sync_claim = models.UUIDField(null=True, blank=True)
    sync_claimed_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.CharField(max_length=200, blank=True, default="")
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "token_digest"], name="device_unique_token_per_workspace"
            )
        ]
        indexes = [
            models.Index(
                fields=["workspace", "updated_at"],
                condition=Q(needs_sync=True),
                name="device_waiting_for_sync",
            ),
            models.Index(fields=["workspace", "-created_at", "-id"], name="device_newest_first_id"),
        ]

    def __str__(self) -> str:
        return f"{self.platform} device {self.token_prefix}… in {self.workspace_id}"


class AudienceProfile(BaseModel):
    """How many active devices of one platform sit in exactly this set of topics.

    Estimates evaluate a condition over these rows instead of over devices: their number
    grows with the distinct combinations of zone, language, bucket and app topics, not with
    the audience. `topic_list` is `,a,b,c,` (sorted), so "'b' in topics" is a substring test
    for `,b,` (a comma is never part of a topic name).
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    platform = models.CharField(max_length=16, choices=Platform.choices)
    topic_list = models.TextField()
    # SHA-256 of topic_list: the unique key (a list of 100 long topics is too long to index).
    topic_key = models.CharField(max_length=64)
    devices = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "platform", "topic_key"], name="audience_profile_unique"
            )
        ]


class TopicAudience(BaseModel):
    """How many active devices of one platform are in one topic."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    topic = models.CharField(max_length=900)
    platform = models.CharField(max_length=16, choices=Platform.choices)
    devices = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "topic", "platform"], name="topic_audience_unique"
            )
        ]
