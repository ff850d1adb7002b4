from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.campaigns import services
from apps.notifications.models import JobStatus, ScheduledJob


@pytest.fixture
def campaign(workspace, owner):
    return services.create_campaign(
        workspace=workspace,
        actor=owner,
        name="Weekly digest",
        topic="digest",
        contents=[{"title": "Your week", "subtitle": "Five things you missed"}],
    )


def test_defaults(campaign):
    job = ScheduledJob.objects.create(
        workspace=campaign.workspace, campaign=campaign, run_at=timezone.now()
    )
    assert job.status == JobStatus.PENDING
    assert job.attempt == 0
    assert job.claimed_at is job.started_at is job.lease_expires_at is job.finished_at is None
    assert job.last_error == ""
    assert list(campaign.jobs.all()) == [job]


def test_one_job_per_campaign_and_run_time(campaign):
    run_at = timezone.now() + timedelta(hours=1)
    ScheduledJob.objects.create(workspace=campaign.workspace, campaign=campaign, run_at=run_at)
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledJob.objects.create(workspace=campaign.workspace, campaign=campaign, run_at=run_at)
    ScheduledJob.objects.create(
        workspace=campaign.workspace, campaign=campaign, run_at=run_at + timedelta(seconds=1)
    )


def test_unknown_status_is_refused_by_the_database(campaign):
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledJob.objects.create(
            workspace=campaign.workspace, campaign=campaign, run_at=timezone.now(), status="lost"
        )


def test_claim_and_tenant_indexes_exist(db):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, ScheduledJob._meta.db_table)
    assert constraints["sjob_ws_run_status"]["columns"] == ["workspace_id", "run_at", "status"]
    assert constraints["sjob_pending_due"]["columns"] == ["run_at"]
    assert constraints["sjob_campaign_run_at"]["unique"]
