"""/metrics: Prometheus text, the optional bearer token, request metrics by route template,
values after a real send, and sums across processes in multiprocess mode."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import include, path
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.common.metrics import MULTIPROC_ENV, metrics_view

# /metrics next to the real routes, whether or not config.urls has it yet.
urlpatterns = [path("metrics", metrics_view), path("", include("config.urls"))]
pytestmark = pytest.mark.urls(__name__)


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_project_counters_are_listed(client):
    response = client.get("/metrics")
    text = response.content.decode()
    for name in (
        "notifications_sent_total",
        "notifications_failed_total",
        "campaign_created_total",
        "events_ingested_total",
        "fcm_requests_total",
        "dispatch_lateness_seconds",
        "claim_to_send_seconds",
        "delivery_batch_size",
        "fcm_sends_in_flight",
        "dispatch_backlog",
        "scheduler_errors_total",
        "cache_errors_total",
        "http_requests_total",
        "http_request_duration_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


def test_a_token_protects_the_endpoint_when_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "NOT_AUTHENTICATED"
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token")


def test_requests_are_counted_by_route_template_and_status(client, api):
    route = "api/v1/campaigns/<campaign_id>"
    before = scrape(client)
    missing = "00000000-0000-0000-0000-000000000001"
    assert api.get(f"/api/v1/campaigns/{missing}").status_code == 404
    assert api.get(f"/api/v1/campaigns/{missing.replace('1', '2')}").status_code == 404
    api.get("/api/v1/no/such/thing")
    after = scrape(client)
    labels = {"method": "GET", "route": route, "status": "404"}
    assert (
        value(after, "http_requests_total", **labels)
        - value(before, "http_requests_total", **labels)
        == 2
    )
    count = "http_request_duration_seconds_count"
    assert (
        value(after, count, method="GET", route=route)
        - value(before, count, method="GET", route=route)
        == 2
    )
    assert not [key for key in after if missing in str(key)]  # ids never become labels


@pytest.mark.django_db
def test_metric_values_after_a_send(
    client, connected_workspace, owner, fake_fcm, django_capture_on_commit_callbacks
):
    from apps.analytics import services as analytics
    from apps.campaigns import services as campaigns
    from apps.notifications.dispatcher import claim_due
    from apps.notifications.models import Delivery

    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaigns.create_campaign(
            workspace=connected_workspace, actor=owner, name="Launch", topic="news",
            contents=[{"title": "A", "subtitle": "a"}, {"title": "B", "subtitle": "b"}],
        )  # fmt: skip
    start = (timezone.now() + timedelta(minutes=5)).replace(microsecond=0)
    campaigns.schedule_campaign(campaign=campaign, actor=owner, scheduled_at=start)
    delivery = Delivery.objects.get(campaign=campaign)
    with django_capture_on_commit_callbacks(execute=True):
        claim_due(now=delivery.run_at)
    with django_capture_on_commit_callbacks(execute=True):
        analytics.ingest_events(
            workspace_id=connected_workspace.pk,
            payload={"events": [
                {"id": "o1", "type": "opened", "occurred_at": timezone.now().isoformat(),
                 "campaign_id": str(campaign.pk)},
                {"id": "o1", "type": "opened", "occurred_at": timezone.now().isoformat()},
            ]},
        )  # fmt: skip
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("notifications_sent_total") == 2
    assert delta("campaign_created_total", origin="create") == 1
    assert delta("dispatch_lateness_seconds_count") == 1
    assert delta("delivery_batch_size_count") == 1 and delta("jobs_claimed_total") == 1
    assert delta("claim_to_send_seconds_count") == 1
    assert delta("events_ingested_total", type="opened") == 1
    assert delta("events_discarded_total", reason="duplicate") == 1
    assert (
        sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == "fcm_requests_total") >= 2
    )


WRITER = """
import sys
import apps.analytics.metrics as analytics
import apps.campaigns.metrics as campaigns
analytics.events_ingested_total.labels("opened").inc(int(sys.argv[1]))
campaigns.campaign_created_total.labels("create").inc()
"""


def test_multiprocess_mode_sums_the_workers(client, tmp_path, monkeypatch):
    """Two processes (as two gunicorn workers would) write to one PROMETHEUS_MULTIPROC_DIR;
    /metrics serves their sum."""
    env = {"PATH": "/usr/bin:/bin", MULTIPROC_ENV: str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n)], env=env, cwd=django_settings.BASE_DIR
        )
        for n in (3, 4)
    ]
    assert [worker.wait(timeout=30) for worker in workers] == [0, 0]
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process

    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    samples = scrape(client)
    assert value(samples, "events_ingested_total", type="opened") == 7
    assert value(samples, "campaign_created_total", origin="create") == 2


def test_process_groups_in_their_own_directories_are_merged(
    client, tmp_path, monkeypatch, settings
):
    """The web server, a worker and a dispatcher each write their own directory (in
    containers each is PID 1: one shared directory would mix their files); /metrics merges
    the directories METRICS_MERGE_DIRS lists."""
    web, worker = tmp_path / "web", tmp_path / "worker"
    for directory, n in ((web, 3), (worker, 4)):
        directory.mkdir()
        env = {"PATH": "/usr/bin:/bin", MULTIPROC_ENV: str(directory)}
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n)], env=env, cwd=django_settings.BASE_DIR
        )
        assert writer.wait(timeout=30) == 0
    monkeypatch.setenv(MULTIPROC_ENV, str(web))
    settings.METRICS_MERGE_DIRS = [str(web), str(worker)]
    samples = scrape(client)
    assert value(samples, "events_ingested_total", type="opened") == 7
    text = client.get("/metrics").content.decode()
    assert (
        text.count("# TYPE events_ingested_total counter") == 1
    )  # one family, not one per directory
