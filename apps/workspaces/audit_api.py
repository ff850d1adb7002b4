from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from apps.common.filters import AuditLogFilter
from apps.common.models import AuditLog
from apps.workspaces.models import Role
from apps.workspaces.tenancy import WorkspaceScopedViewSet


class AuditLogSerializer(serializers.ModelSerializer):
    actor_email = serializers.EmailField(source="actor.email", read_only=True, default=None)

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_email",
            "action",
            "target_type",
            "target_id",
            "metadata",
            "request_id",
            "ip",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(
        summary="Read the audit log",
        description="Every state change in the workspace, newest first: who (`actor`, "
        "`actor_email`), what (`action`, such as `campaign.created`), on what "
        "(`target_type`, `target_id`), with metadata, the request id and the client IP. "
        "Secrets are never recorded. Filter by `actor`, `action`, `target_type`, "
        "`target_id` and time (`from`, `to`). Admins and owners.",
        parameters=[
            OpenApiParameter("from", str, description="ISO 8601; entries at or after"),
            OpenApiParameter("to", str, description="ISO 8601; entries before"),
        ],
    )
)
class AuditLogViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    """The workspace's audit trail, newest first. Admins only."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    queryset = AuditLog.objects.all()
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilter

    def refine_queryset(self, queryset):
        return queryset.select_related("actor").order_by("-created_at")
