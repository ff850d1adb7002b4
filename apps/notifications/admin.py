from django.contrib import admin

from apps.notifications.models import ScheduledJob


@admin.register(ScheduledJob)
class ScheduledJobAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "run_at", "status", "attempt", "finished_at"]
    list_filter = ["status"]
    search_fields = ["id", "campaign__name"]
    raw_id_fields = ["workspace", "campaign"]
    readonly_fields = [
        "attempt",
        "claimed_at",
        "started_at",
        "lease_expires_at",
        "finished_at",
        "last_error",
        "created_at",
        "updated_at",
    ]
