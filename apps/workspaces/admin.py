from django.contrib import admin

from apps.workspaces.models import Invitation, Workspace, WorkspaceMember


class MemberInline(admin.TabularInline):
    model = WorkspaceMember
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "timezone", "is_deleted", "created_at"]
    search_fields = ["name"]
    inlines = [MemberInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "workspace", "role", "status", "expires_at"]
    exclude = ["token_hash"]
    raw_id_fields = ["workspace", "invited_by", "accepted_by"]
