from django.contrib import admin

from apps.notifications.models import Delivery, Occurrence


class ReadOnlyAdmin(admin.ModelAdmin):
    """The engine owns these rows: the admin shows them and never writes."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Occurrence)
class OccurrenceAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "at", "local", "is_last"]
    search_fields = ["id", "campaign__name"]
    raw_id_fields = ["workspace", "campaign"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "slice", "run_at", "status", "attempts", "finished_at"]
    list_filter = ["status"]
    search_fields = ["id", "campaign__name"]
    raw_id_fields = ["workspace", "campaign", "occurrence"]
