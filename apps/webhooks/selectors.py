"""Reads the API and services share."""

from apps.webhooks.models import WebhookAttempt, WebhookEndpoint


def attempts_of(endpoint: WebhookEndpoint):
    """The endpoint's delivery log, newest first."""
    return WebhookAttempt.objects.filter(endpoint=endpoint).order_by("-created_at")


def pending_count(endpoint: WebhookEndpoint) -> int:
    return endpoint.messages.filter(status="pending").count()
