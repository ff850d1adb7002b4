"""Every error, whatever raised it, is {"error": {"code", "message", "details"}}."""

import pytest
from django.urls import path
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from apps.common import audit
from apps.common.models import AuditLog


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


# --- a view that fails after writing, mounted only for these tests --------------------------
class ExplodingView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request):
        audit.record("test.before_crash", target_type="test", target_id="1")
        raise RuntimeError("secret-internal-detail")


urlpatterns = [path("boom", ExplodingView.as_view())]


@pytest.mark.django_db
def test_400_validation_error_names_each_field(client_for):
    response = client_for().post("/api/v1/auth/register", {"email": "not-an-email"}, format="json")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert set(error["details"]) == {"email", "password"}
    assert all(isinstance(messages, list) for messages in error["details"].values())


@pytest.mark.django_db
def test_400_malformed_json(client_for):
    response = client_for().post(
        "/api/v1/auth/register", data="{not json", content_type="application/json"
    )
    assert_error(response, 400, "PARSE_ERROR")


@pytest.mark.django_db
def test_401_without_and_with_a_bad_token(client_for):
    assert_error(client_for().get("/api/v1/me"), 401, "NOT_AUTHENTICATED")
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    response = client.get("/api/v1/me")
    assert_error(response, 401, "AUTHENTICATION_FAILED")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_403_for_a_member_on_an_admin_route(member_api):
    assert_error(member_api.get("/api/v1/audit-logs"), 403, "PERMISSION_DENIED")


def test_404_for_unknown_api_paths_any_method(api):
    assert_error(api.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    assert_error(api.post("/api/v1/no/such/thing/", {}, format="json"), 404, "NOT_FOUND")
    assert_error(api.delete("/api/v2/anything"), 404, "NOT_FOUND")


def test_404_for_unknown_non_api_paths(api):
    assert_error(api.get("/definitely-not-here"), 404, "NOT_FOUND")


def test_405(api):
    response = api.put("/api/v1/me", {"name": "x"}, format="json")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")


@pytest.mark.django_db
def test_429_carries_retry_after(client_for, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "auth", "2/min")
    client = client_for()
    for _ in range(2):
        client.post("/api/v1/auth/token", {"email": "a@b.co", "password": "x"}, format="json")
    response = client.post("/api/v1/auth/token", {"email": "a@b.co", "password": "x"})
    error = assert_error(response, 429, "THROTTLED")
    assert 0 < int(response["Retry-After"]) <= 60
    assert error["details"]["retry_after"] == int(response["Retry-After"])


@pytest.mark.django_db
@pytest.mark.urls("apps.common.tests.test_error_contract")
def test_500_hides_the_exception_logs_it_and_rolls_back(client_for, caplog):
    client = client_for()
    client.raise_request_exception = False
    response = client.post("/boom")
    error = assert_error(response, 500, "SERVER_ERROR")
    assert "secret-internal-detail" not in response.content.decode()
    assert error["message"] == "Internal server error."
    # The audit row written before the crash did not survive: the request was rolled back.
    assert not AuditLog.objects.filter(action="test.before_crash").exists()
    assert any(
        r.msg.get("event") == "unhandled_exception"
        for r in caplog.records
        if isinstance(r.msg, dict)
    )


def test_every_response_carries_a_request_id(api):
    generated = api.get("/api/v1/me")
    assert len(generated["X-Request-ID"]) == 32
    echoed = api.get("/api/v1/me", HTTP_X_REQUEST_ID="trace-abc.123")
    assert echoed["X-Request-ID"] == "trace-abc.123"
    error = api.get("/api/v1/nope", HTTP_X_REQUEST_ID="trace-404")
    assert error["X-Request-ID"] == "trace-404"
    # Garbage (or log-injection attempts) is replaced, not echoed.
    hostile = api.get("/api/v1/me", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert hostile["X-Request-ID"] != "bad id\nwith newline"


def test_413_for_oversized_bodies_on_any_endpoint(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/campaigns", {"name": "x" * 2000}, format="json")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
