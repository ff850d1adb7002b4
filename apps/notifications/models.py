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
