from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.notifications.models import Delivery, Occurrence

# The engine owns these rows: the admin shows them and never writes.


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
