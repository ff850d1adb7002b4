from django.contrib import admin

from apps.analytics.models import IngestKey


@admin.register(IngestKey)
class IngestKeyAdmin(admin.ModelAdmin):
    """Read-only: keys are made, rotated and revoked through the API (audited, secret shown
    once); the hash is never displayed."""

    list_display = ("name", "prefix", "workspace", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    fields = ("workspace", "name", "prefix", "created_by", "created_at", "last_used_at",
              "rotated_at", "revoked_at")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
