"""Real processes on PostgreSQL + Redis (CI runs these): a Celery worker sending through the
fake FCM over HTTP, four dispatchers racing over 1,000 due jobs, and a worker killed mid-job."""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.campaigns.models import Campaign, CampaignContent
from apps.notifications.dispatcher import claim_due_jobs, reclaim_expired_leases
from apps.notifications.models import JobStatus, Notification, ScheduledJob

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def worker_env(fake_fcm):
    # Short leases so the crash test does not wait a minute for the reaper.
    return {"FCM_BASE_URL": fake_fcm.base_url, "JOB_LEASE_SECONDS": "2"}


def due_campaigns(workspace, count: int, contents: int = 1) -> list[ScheduledJob]:
    """`count` scheduled one-off campaigns, each with a job due now (bulk: fast)."""
    now = timezone.now()
    campaigns = Campaign.objects.bulk_create(
        Campaign(workspace=workspace, name=f"c{i}", topic="news", status="scheduled",
                 scheduled_at=now, scheduled_local=now.strftime("%Y-%m-%dT%H:%M:%S"))
        for i in range(count)
    )  # fmt: skip
    CampaignContent.objects.bulk_create(
        CampaignContent(campaign=c, position=p, title=f"{c.name} #{p}", subtitle="body")
        for c in campaigns
        for p in range(contents)
    )
    return ScheduledJob.objects.bulk_create(
        ScheduledJob(workspace=workspace, campaign=c, run_at=now - timedelta(seconds=1))
        for c in campaigns
    )


def wait_until(check, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_worker_sends_through_the_fake_fcm(
    celery_worker_process, connected_workspace, fake_fcm
):
    [job] = due_campaigns(connected_workspace, 1, contents=2)
    assert claim_due_jobs() == [(str(job.pk), 1)]
    wait_until(lambda: ScheduledJob.objects.get(pk=job.pk).status == JobStatus.COMPLETED,
               what="the job to complete")  # fmt: skip
    assert len(fake_fcm.messages("demo-project")) == 2
    assert Campaign.objects.get(pk=job.campaign_id).status == "completed"


def test_four_dispatchers_enqueue_each_of_1000_jobs_once(
    connected_workspace, fake_fcm, transactional_db
):
    """Eager mode: each dispatcher thread runs what it claims, so 1,000 claims = 1,000 sends."""
    jobs = due_campaigns(connected_workspace, 1000)
    claims: list[list[tuple[str, int]]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def dispatcher(index: int) -> None:
        try:
            while batch := claim_due_jobs(limit=25):
                claims[index].extend(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    claimed = [job_id for batch in claims for job_id, _ in batch]
    assert len(claimed) == 1000 and len(set(claimed)) == 1000
    assert sum(1 for batch in claims if batch) >= 2, "the dispatchers did not share the work"
    assert set(claimed) == {str(job.pk) for job in jobs}
    assert ScheduledJob.objects.filter(status=JobStatus.COMPLETED, attempt=1).count() == 1000
    assert fake_fcm.send_requests == 1000 and len(fake_fcm.messages()) == 1000


def test_a_worker_killed_mid_job_is_recovered_after_its_lease(
    start_celery_worker, connected_workspace, fake_fcm
):
    first = start_celery_worker()
    [job] = due_campaigns(connected_workspace, 1, contents=3)
    # The second send hangs long enough to kill the worker in the middle of it.
    fake_fcm.inject({"kind": "slow", "seconds": 0}, {"kind": "slow", "seconds": 4})
    claim_due_jobs()
    wait_until(lambda: Notification.objects.filter(job=job, status="sending", position=1).exists(),
               what="the second send to start")  # fmt: skip
    first.kill()  # SIGKILL: no cleanup, no acknowledgement
    first.wait()
    assert ScheduledJob.objects.get(pk=job.pk).status == JobStatus.RUNNING

    start_celery_worker()
    wait_until(lambda: reclaim_expired_leases() == 1, timeout=10, what="the lease to expire")
    assert claim_due_jobs() == [(str(job.pk), 2)]
    wait_until(lambda: ScheduledJob.objects.get(pk=job.pk).status == JobStatus.COMPLETED,
               what="the recovered job to complete")  # fmt: skip

    notifications = {n.pk.hex: n for n in Notification.objects.filter(job=job)}
    assert {n.status for n in notifications.values()} == {"sent"}
    time.sleep(4.5)  # let the hung request of the killed worker finish at the fake
    seen = Counter(m["message"]["apns"]["headers"]["apns-collapse-id"] for m in fake_fcm.messages())
    assert set(seen) == set(notifications)
    # Content 0 was recorded sent before the crash: never sent again. The content in flight
    # at the crash may have reached FCM twice — always with the same collapse identity, so a
    # device shows it once. Which of the two happened depends on whether FCM accepted it.
    by_position = {n.position: seen[key] for key, n in notifications.items()}
    assert by_position[0] == 1 and by_position[2] == 1
    assert by_position[1] in (1, 2)
    print(f"in-flight content delivered {by_position[1]} time(s), one collapse id")
