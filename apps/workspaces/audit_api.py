from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from apps.common.fastread import FastReadMixin
from apps.common.filters import AuditLogFilter
from apps.common.models import AuditLog
from apps.common.pagination import CursorPagination
from apps.common.related import with_related_columns
from apps.workspaces.models import Role
from apps.workspaces.tenancy import CompiledWorkspaceListMixin, WorkspaceScopedViewSet


class AuditLogSerializer(FastReadMixin, serializers.ModelSerializer):
    actor_type = serializers.SerializerMethodField(
        help_text="`user` (a person, `actor`), `api_key` (a request made with an API key, "
        "`actor_api_key`) or `system` (the engine, tasks)."
    )
    # Annotated on each row by AuditLogViewSet.refine_queryset (None: no such actor).
    actor_email = serializers.EmailField(read_only=True, allow_null=True)
    actor_api_key_name = serializers.CharField(read_only=True, allow_null=True)
    actor_api_key_prefix = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "created_at",
            "actor_type",
            "actor",
            "actor_email",
            "actor_api_key",
            "actor_api_key_name",
            "actor_api_key_prefix",
            "action",
            "target_type",
            "target_id",
            "metadata",
            "request_id",
            "ip",
        ]
        read_only_fields = fields

    def get_actor_type(self, entry: AuditLog) -> str:
        if entry.actor_id is not None:
            return "user"
        return "api_key" if entry.actor_api_key_id is not None else "system"


@extend_schema_view(
    list=extend_schema(
        summary="Read the audit log",
        description="Every state change in the workspace, newest first: who (`actor_type`; a "
        "person: `actor`, `actor_email`; an API key: `actor_api_key`, its name and "
        "prefix), what (`action`, such as `campaign.created`), on what (`target_type`, "
        "`target_id`), with metadata, the request id and the client IP. "
        "Secrets are never recorded. Filter by `actor`, `actor_api_key`, `action`, "
        "`target_type`, `target_id` and time (`from`, `to`), or by `campaign`: the "
        "campaign's own entries and the sending engine's batch entries that list it. The "
        "engine records each batch as one entry per workspace (`engine.batch_started`, "
        "`engine.batch_settled`; target `engine.batch`, the batch's token) whose metadata "
        "has `counts` per action, `campaign_ids` and the `entries` (capped; "
        "`entries_left_out` counts the rest). Admins and owners, or an API "
        "key with `audit:read`.",
        parameters=[
            OpenApiParameter("from", str, description="ISO 8601; entries at or after"),
            OpenApiParameter("to", str, description="ISO 8601; entries before"),
        ],
    )
)
class AuditLogViewSet(CompiledWorkspaceListMixin, mixins.ListModelMixin, WorkspaceScopedViewSet):
    """The workspace's audit trail, newest first. Admins only."""

    api_key_scopes = {"GET": "audit:read"}
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    queryset = AuditLog.objects.all()
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilter
    pagination_class = CursorPagination

    def refine_queryset(self, queryset):
        # Only the columns AuditLogSerializer shows of the actor and of the API key.
        return with_related_columns(
            queryset,
            actor_email="actor__email",
            actor_api_key_name="actor_api_key__name",
            actor_api_key_prefix="actor_api_key__prefix",
        ).order_by("-created_at", "-id")
