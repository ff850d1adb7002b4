from django.contrib import admin

from apps.ai.models import AIGeneration, Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "source", "is_deleted", "updated_at"]
    list_filter = ["source", "is_deleted"]
    search_fields = ["name", "title", "subtitle"]
    raw_id_fields = ["workspace", "generation", "created_by"]


@admin.register(AIGeneration)
class AIGenerationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workspace", "provider", "model", "status", "latency_ms"]
    list_filter = ["status", "provider"]
    search_fields = ["prompt"]
    raw_id_fields = ["workspace", "user"]
    readonly_fields = [field.name for field in AIGeneration._meta.fields]
