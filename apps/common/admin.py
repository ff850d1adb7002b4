from django.contrib import admin

from apps.common.models import AuditLog


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows and never writes them: they are written by services only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """Read-only: the audit trail is written by services, never edited."""

    list_display = ["created_at", "action", "actor", "workspace", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["action", "target_id", "request_id"]
