from django.contrib import admin

from apps.webhooks.models import WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Read-only: endpoints are managed through the API (audited, secret shown once); the
    secrets are never displayed."""

    list_display = ("url", "workspace", "is_enabled", "disabled_at", "last_success_at")
    list_filter = ("is_enabled",)
    search_fields = ("url",)
    fields = ("workspace", "url", "description", "event_types", "is_enabled", "disabled_reason",
              "disabled_at", "last_success_at", "last_failure_at", "created_at")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
