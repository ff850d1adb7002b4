import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.common.pagination import PageNumberPagination
from config.celery import app


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_the_failing_part(client, monkeypatch):
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
