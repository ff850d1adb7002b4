from django.db import models
from django.db.models import Q

from apps.common.models import BaseModel


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for run_at
    QUEUED = "queued", "Queued"  # claimed by the dispatcher, task enqueued
    RUNNING = "running", "Running"  # a worker holds the lease and is sending
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"  # the campaign was cancelled before it ran
    SKIPPED = "skipped", "Skipped"  # the campaign was no longer runnable when claimed


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class ScheduledJob(BaseModel):
    """One planned run of a campaign (one occurrence of its schedule).

    The lease fields belong to the sending engine: a dispatcher claims due pending jobs
    (status queued, claimed_at) in the transaction that selects them, a worker takes a
    lease (running, started_at, lease_expires_at, attempt + 1) and finishes the job
    (finished_at, last_error); a job whose lease expired can be reclaimed.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="scheduled_jobs"
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="jobs"
    )
    run_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Set when a retry waits longer than a Celery countdown should: the dispatcher claims the
    # job again once this time has passed. `run_at` stays the occurrence it belongs to.
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_at"]
        indexes = [
            models.Index(fields=["workspace", "run_at", "status"], name="sjob_ws_run_status"),
            # The dispatcher's claim: status = pending AND run_at <= now ORDER BY run_at.
            models.Index(
                fields=["run_at"], condition=Q(status=JobStatus.PENDING), name="sjob_pending_due"
            ),
            # Reclaiming jobs whose worker died: active AND lease_expires_at < now.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status__in=ACTIVE_JOB_STATUSES),
                name="sjob_active_lease",
            ),
            models.Index(fields=["campaign", "status"], name="sjob_campaign_status"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "run_at"], name="sjob_campaign_run_at"),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="sjob_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} for {self.campaign_id} at {self.run_at:%Y-%m-%dT%H:%M:%SZ}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # created with its job's run, not yet handed to FCM
    SENDING = "sending", "Sending"  # handed to FCM; the outcome is not recorded yet
    SENT = "sent", "Sent"  # FCM accepted it (fcm_message_id)
    FAILED = "failed", "Failed"  # FCM refused it for good (error_code, error_message)


class Notification(BaseModel):
    """One content of one run of a campaign: exactly one row per (job, content).

    A retried run finds the row and skips what is already sent; the row's id is the
    collapse identity FCM carries (Android tag, apns-collapse-id, web-push Topic), so a
    message sent twice after a crash shows once on a device. `attempt` is the job attempt
    that owns the row: writes from a superseded attempt match no row.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="notifications"
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="notifications"
    )
    job = models.ForeignKey(ScheduledJob, on_delete=models.CASCADE, related_name="notifications")
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
    attempt = models.PositiveIntegerField(default=0)
    fcm_message_id = models.CharField(max_length=255, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "content"], name="notification_job_content"),
            models.CheckConstraint(
                condition=Q(status__in=NotificationStatus.values), name="notification_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="notif_ws_created"),
            models.Index(fields=["workspace", "status", "sent_at"], name="notif_ws_status_sent"),
            models.Index(fields=["campaign", "status"], name="notif_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"notification {self.pk} ({self.status})"
