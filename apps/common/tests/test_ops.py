from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.common.pagination import PageNumberPagination
from apps.notifications.dispatcher import beat
from config.celery import app


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    beat("test-dispatcher")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
        "scheduler": "ok",
    }
    assert 0 <= response.json()["details"]["scheduler"]["last_round_seconds_ago"] < 5


@pytest.mark.django_db
def test_readyz_fails_while_the_scheduler_is_stale_or_never_ran(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["details"]["checks"]["scheduler"] == "not_ready"
    assert error["details"]["details"]["scheduler"] == {"last_round_seconds_ago": None}
    beat("test-dispatcher", now=timezone.now() - timedelta(seconds=120))
    response = client.get("/readyz")
    assert response.status_code == 503 and "scheduler" in response.json()["error"]["message"]
    facts = response.json()["error"]["details"]["details"]["scheduler"]
    assert facts["last_round_seconds_ago"] >= 120
    assert facts["stale_after_seconds"] == settings.SCHEDULER_STALE_SECONDS
    beat("test-dispatcher")
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_names_the_failing_part(client, monkeypatch):
    beat("test-dispatcher")
    # Nothing listens on port 9 (discard) here: the broker check fails fast.
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:9/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert error["details"]["checks"]["broker"] == "unavailable"
    assert error["details"]["checks"]["database"] == "ok"
    assert "broker" in error["message"]


def test_page_size_is_clamped_not_refused():
    request = Request(APIRequestFactory().get("/x", {"page_size": "1000"}))
    assert PageNumberPagination().get_page_size(request) == 100
    assert PageNumberPagination().get_page_size(Request(APIRequestFactory().get("/x"))) == 20


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema")
    assert schema.status_code == 200
    assert b"X-Workspace-ID" in schema.content and b"/api/v1/auth/register" in schema.content
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
