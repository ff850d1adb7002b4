"""Signed webhooks: endpoints, their outbox of events, and the log of delivery attempts.

* `WebhookEndpoint`: a workspace's receiver (URL, subscribed event types, secrets encrypted
  at rest, enabled or disabled with the reason) and its delivery state: the lease of the one
  worker delivering to it, and when its head-of-line event is tried again.
* `WebhookMessage`: the outbox, one row per (event, endpoint), written in the transaction of
  the change that causes the event. `body` holds the exact bytes that are signed and sent on
  every attempt (a JSON column could reorder keys); `event_id` is the `webhook-id` header,
  the same on every attempt and every redelivery, so receivers deduplicate by it.
* `WebhookAttempt`: one HTTP attempt (or a refusal before connecting), the delivery log.
"""

from django.conf import settings
from django.db import models

from apps.common.fields import JSONField
from apps.common.models import BaseModel

ALL_EVENTS = "*"


class WebhookEndpoint(BaseModel):
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=500, blank=True, default="")
    # The subscribed event types, or ["*"] for every type.
    event_types = JSONField(default=list)
    secret_encrypted = models.TextField(editable=False)
    # After a rotation the previous secret still signs (a second signature) until then.
    previous_secret_encrypted = models.TextField(editable=False, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Delivery state, written only by the worker holding the lease (or by enable/disable).
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)  # the head event's next attempt
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # emit(): the enabled endpoints of the workspaces of a batch, one query.
            models.Index(fields=["workspace", "is_enabled"], name="webhookendpoint_ws_enabled"),
        ]

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:  # never the ciphertext
        return f"<WebhookEndpoint {self.pk} {self.url}>"

    def subscribes_to(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (given up)"


class WebhookMessage(BaseModel):
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    body = models.TextField()
    # Events of one emit() share a creation time's neighbourhood; this keeps their order.
    ordinal = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "ordinal"]
        indexes = [
            # The head of an endpoint's line: its earliest pending message.
            models.Index(
                fields=["endpoint", "status", "created_at", "ordinal"],
                name="webhookmessage_line",
            ),
            # Retention: finished messages by age.
            models.Index(fields=["status", "updated_at"], name="webhookmessage_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookAttempt(BaseModel):
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="attempts")
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="log")
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_headers = JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["endpoint", "created_at", "id"], name="webhookattempt_log_id"),
            models.Index(fields=["created_at"], name="webhookattempt_age"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.attempt} {self.outcome}"
