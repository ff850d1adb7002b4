"""The SSRF guard: refused destinations never see a connection (the receiver saw nothing),
with the reason in the delivery log; redirects are never followed; the request goes to the
address that was checked, with the URL's Host."""

import pytest
from django.db import transaction

from apps.webhooks import services
from apps.webhooks.addresses import checked_address, refusal, url_problem
from apps.webhooks.models import WebhookAttempt, WebhookMessage
from apps.webhooks.tests.conftest import pump

pytestmark = pytest.mark.usefixtures("webhook_settings")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "::1", "169.254.169.254", "10.0.0.1", "172.16.5.4",
        "192.168.1.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "::", "224.0.0.251",
        "ff02::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "2002:a00:1::", "64:ff9b::7f00:1", "240.0.0.1", "198.18.0.1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address):
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert refusal(address) is None


def refused_deliveries(settings, make_endpoint, workspace, receiver, url: str) -> str:
    """Create the endpoint while private addresses are allowed (as if its name resolved
    publicly then), forbid them, emit, deliver: the refusal from the log."""
    issued = make_endpoint(workspace, url)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with transaction.atomic():
        services.emit(workspace.pk, "campaign.completed", {"n": 1})
    pump(lambda: WebhookAttempt.objects.filter(endpoint=issued.endpoint).exists())
    attempt = WebhookAttempt.objects.get(endpoint=issued.endpoint)
    assert attempt.outcome == "failed" and attempt.status_code is None
    assert receiver.all() == []  # no connection reached it
    assert WebhookMessage.objects.get(endpoint=issued.endpoint).status == "pending"  # retried
    return attempt.error


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]:{port}/hook", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3:{port}/hook", "10.1.2.3 is a private address"),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "loopback"),
        ("http://localhost:{port}/hook", "localhost resolves to"),
        ("http://hooks.customer.example:{port}/hook", "hooks.customer.example resolves to 127.0.0.1"),
        ("http://mixed.customer.example:{port}/hook", "resolves to 10.0.0.8"),
    ],
)  # fmt: skip
def test_refused_at_connect_time_with_the_reason_in_the_log(
    transactional_db, settings, make_endpoint, workspace, receiver, url, reason
):
    # Names that resolve privately without DNS: one private answer is enough to refuse,
    # even beside a public one (every answer is checked).
    settings.WEBHOOK_RESOLVE_OVERRIDES = {
        "hooks.customer.example": "127.0.0.1",
        "mixed.customer.example": "93.184.216.34|10.0.0.8",
    }
    error = refused_deliveries(
        settings, make_endpoint, workspace, receiver, url.format(port=receiver.port)
    )
    assert error.startswith("refused:") and reason in error, error


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    transactional_db, make_endpoint, workspace, make_receiver
):
    target = make_receiver()
    redirector = make_receiver(default=("redirect", target.url))
    issued = make_endpoint(workspace, redirector.url)
    with transaction.atomic():
        services.emit(workspace.pk, "campaign.completed", {"n": 1})
    pump(lambda: WebhookAttempt.objects.exists())
    attempt = WebhookAttempt.objects.filter(endpoint=issued.endpoint).earliest("created_at")
    assert attempt.status_code == 302 and attempt.outcome == "failed"
    assert "redirects are not followed" in attempt.error
    assert attempt.response_headers["location"] == target.url
    assert len(redirector.all()) >= 1 and target.all() == []


def test_the_request_goes_to_the_checked_address_with_the_urls_host(
    transactional_db, settings, make_endpoint, workspace, receiver
):
    """DNS rebinding: the name is resolved once and the connection made to that address;
    the receiver sees the name in Host (and https would use it for SNI and the certificate)."""
    settings.WEBHOOK_RESOLVE_OVERRIDES = {"pinned.customer.example": "127.0.0.1"}
    make_endpoint(workspace, f"http://pinned.customer.example:{receiver.port}/hook?x=1")
    with transaction.atomic():
        services.emit(workspace.pk, "campaign.completed", {"n": 1})
    pump(lambda: len(receiver.accepted()) == 1)
    request = receiver.accepted()[0]
    assert request.headers["host"] == f"pinned.customer.example:{receiver.port}"
    assert request.path == "/hook?x=1"
    assert checked_address("pinned.customer.example", 443) == "127.0.0.1"


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://127.0.0.1/hook", "public address"),
        ("https://[::1]/hook", "public address"),
        ("https://169.254.169.254/", "link-local"),
        ("https://10.0.0.1/", "private"),
        ("https://localhost/hook", "localhost"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("ftp://hooks.example.com/", "https://"),
        ("http://hooks.example.com/", "must use https"),
        ("https:///nohost", "no host"),
    ],
)
def test_urls_refused_at_creation(settings, url, message):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.WEBHOOK_REQUIRE_HTTPS = True
    problem = url_problem(url)
    assert problem is not None and message in problem, problem
    assert url_problem("https://hooks.example.com/pushpilot") is None
