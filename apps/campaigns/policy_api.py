"""The workspace's send policies: HTTP in and out only (apps.campaigns.services.policies)."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apps.campaigns import selectors, services
from apps.campaigns.serializers import SendPolicySerializer
from apps.campaigns.services.policies import policy_values
from apps.workspaces.models import Role
from apps.workspaces.tenancy import WorkspaceScopedAPIView

POLICY_EXAMPLE = OpenApiExample(
    "Quiet nights, a daily cap, approvals",
    summary="No sends 21:00-08:00 in each recipient's zone, 3 a day per topic, 600 a minute, "
    "approval above 100,000 devices",
    value={
        "quiet_hours_start": "21:00:00",
        "quiet_hours_end": "08:00:00",
        "quiet_hours_mode": "recipient",
        "frequency_cap_max_sends": 3,
        "frequency_cap_window_hours": 24,
        "rate_limit_per_minute": 600,
        "approval_threshold": 100000,
    },
    request_only=True,
)


class SendPolicyView(WorkspaceScopedAPIView):
    """The workspace's send policies. Members read them; admins change them."""

    read_role = Role.MEMBER
    write_role = Role.ADMIN
    serializer_class = SendPolicySerializer

    def _body(self, policy):
        return {**policy_values(policy), "updated_at": policy.updated_at if policy else None}

    @extend_schema(
        summary="Get the send policies",
        description="The workspace's send policies: quiet hours (`quiet_hours_start`, "
        "`quiet_hours_end`, judged in the workspace's or each recipient's zone), the "
        "frequency cap per topic, the send-rate cap and the approval threshold. Null fields "
        "are policies not set. Members and above.",
        responses=SendPolicySerializer,
    )
    def get(self, request):
        return Response(
            SendPolicySerializer(self._body(selectors.send_policy(self.workspace))).data
        )

    @extend_schema(
        summary="Set the send policies",
        description="Replace the workspace's send policies (a field left out is cleared). "
        "Quiet hours and the frequency cap apply to deliveries planned from now on (unschedule "
        "and schedule a campaign to re-plan it); the rate cap applies at once; the approval "
        "threshold to campaigns scheduled from now on. Audited (`send_policy.updated`). "
        "Admins and owners. A start without an end (or a cap without its window), or a "
        "window that ends when it starts: 400 VALIDATION_ERROR.",
        request=SendPolicySerializer,
        responses=SendPolicySerializer,
        examples=[POLICY_EXAMPLE],
    )
    def put(self, request):
        serializer = SendPolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.update_policy(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(SendPolicySerializer(self._body(policy)).data)
