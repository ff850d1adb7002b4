from django.contrib import admin

from apps.campaigns.models import Campaign, CampaignContent


class CampaignContentInline(admin.TabularInline):
    """Read-only: contents change through the API, where the FCM rules and the
    draft-only lock are enforced."""

    model = CampaignContent
    extra = 0
    ordering = ["position"]
    fields = ["position", "title", "subtitle", "image_url", "data", "link", "analytics_label"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Only name and description are editable here: status changes through the state
    machine, and target/options/schedule through the API's validation."""

    list_display = ["name", "workspace", "status", "scheduled_at", "next_run_at", "is_deleted"]
    list_filter = ["status", "is_deleted"]
    search_fields = ["name", "id"]
    raw_id_fields = ["workspace", "created_by", "duplicated_from"]
    inlines = [CampaignContentInline]

    def get_queryset(self, request):
        return Campaign.all_objects.select_related("workspace")

    def get_readonly_fields(self, request, obj=None):
        editable = {"name", "description"}
        return [f.name for f in Campaign._meta.fields if f.name not in editable]

    def has_add_permission(self, request):
        return False
