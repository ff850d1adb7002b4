"""The workspace's retention windows: HTTP in and out only (apps.common.retention)."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.common import retention
from apps.workspaces.models import Role
from apps.workspaces.tenancy import WorkspaceScopedAPIView


def _days(help_text: str):
    return serializers.IntegerField(required=False, allow_null=True, help_text=help_text)


class RetentionWindowsSerializer(serializers.Serializer):
    events_days = _days("Days raw app events are kept (by `occurred_at`).")
    notifications_days = _days("Days notification rows are kept (by `created_at`).")
    audit_days = _days("Days audit-log entries are kept (by `created_at`).")


class RetentionCutoffsSerializer(serializers.Serializer):
    events = serializers.DateTimeField()
    notifications = serializers.DateTimeField()
    audit = serializers.DateTimeField()


class RetentionPolicySerializer(RetentionWindowsSerializer):
    """PUT replaces the windows: a field left out or null is the default."""

    defaults = RetentionWindowsSerializer(
        read_only=True, help_text="The defaults (settings RETENTION_*_DAYS)."
    )
    expired_before = RetentionCutoffsSerializer(
        read_only=True,
        help_text="Rows whose time is before these instants are expired today (start of "
        "today, UTC, minus the window).",
    )
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)


class RetentionPolicyView(WorkspaceScopedAPIView):
    """The workspace's retention windows. Members read them; admins change them."""

    read_role = Role.MEMBER
    write_role = Role.ADMIN
    serializer_class = RetentionPolicySerializer

    def _body(self, policy) -> dict:
        return {
            **retention.windows(policy),
            "defaults": retention.windows(None),
            "expired_before": retention.cutoffs(policy),
            "updated_at": policy.updated_at if policy else None,
        }

    @extend_schema(
        summary="Get the retention windows",
        description="How many whole days the workspace keeps raw app events, notification "
        "rows and audit-log entries, the defaults, and the instants before which rows are "
        "expired today: a row goes when its time (`occurred_at` for events, `created_at` "
        "otherwise) is before the start of today (UTC) minus its window. Stats are computed "
        "from hourly rollups, which are kept: they do not change when raw rows go. Members "
        "and above.",
        responses=RetentionPolicySerializer,
    )
    def get(self, request):
        policy = retention.policy_of(self.workspace.pk)
        return Response(RetentionPolicySerializer(self._body(policy)).data)

    @extend_schema(
        summary="Set the retention windows",
        description="Replace the workspace's windows, in whole days (a field left out or "
        "null is the default). Events and notifications are kept at least "
        "EVENTS_MAX_AGE_DAYS + 2 days (apps may still report events that old, linked to "
        "their notifications), audit entries at least 1 day; at most 3650. Rows past a "
        "shortened window go at the next retention run (hourly). Audited "
        "(`retention_policy.updated`). Admins and owners. Out of bounds: 400 "
        "VALIDATION_ERROR.",
        request=RetentionWindowsSerializer,
        responses=RetentionPolicySerializer,
        examples=[
            OpenApiExample(
                "Short raw history, long audit",
                value={"events_days": 40, "notifications_days": 60, "audit_days": 730},
                request_only=True,
            )
        ],
    )
    def put(self, request):
        serializer = RetentionWindowsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = retention.update_policy(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(RetentionPolicySerializer(self._body(policy)).data)
