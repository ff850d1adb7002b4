from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.idempotency import IdempotentMixin
from apps.workspaces import selectors, services
from apps.workspaces.models import Invitation, MemberStatus, Role, Workspace, WorkspaceMember
from apps.workspaces.serializers import (
    InvitationCreatedSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    WorkspaceSerializer,
    WorkspaceWriteSerializer,
)
from apps.workspaces.tenancy import WorkspaceScopedAPIView, WorkspaceScopedViewSet


class WorkspaceListView(IdempotentMixin, APIView):
    """The caller's workspaces, and creating a new one (the caller becomes its owner)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="List your workspaces",
        description="Every workspace you are an active member of, oldest first (not "
        "paginated). Any signed-in user; no `X-Workspace-ID` needed — use one of these ids as "
        "`X-Workspace-ID` on workspace-scoped calls.",
        responses=WorkspaceSerializer(many=True),
    )
    def get(self, request):
        workspaces = selectors.workspaces_of(request.user)
        return Response(WorkspaceSerializer(workspaces, many=True).data)

    @extend_schema(
        summary="Create a workspace",
        description="Create a new, empty workspace (no Firebase project, templates or "
        "campaigns yet); you become its owner. `timezone` (an IANA name, default UTC) is the "
        "default time zone of its campaigns and analytics. Any signed-in user.",
        request=WorkspaceWriteSerializer,
        responses={201: WorkspaceSerializer},
        examples=[
            OpenApiExample(
                "A workspace",
                value={"name": "Acme Mobile", "timezone": "Europe/Paris"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        serializer = WorkspaceWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        workspace = services.create_workspace(
            owner=request.user, name=data["name"], timezone_name=data["timezone"]
        )
        return Response(WorkspaceSerializer(workspace).data, status=status.HTTP_201_CREATED)


class WorkspaceDetailView(WorkspaceScopedAPIView):
    workspace_source = "path"
    workspace_field = "pk"
    write_role = Role.ADMIN
    queryset = Workspace.objects.all()
    serializer_class = WorkspaceSerializer

    def required_role(self) -> str:
        return Role.OWNER if self.request.method == "DELETE" else super().required_role()

    @extend_schema(
        summary="Get a workspace",
        description="One workspace you are a member of (any role). A workspace you are not a "
        "member of, or that does not exist, is a 404.",
        responses=WorkspaceSerializer,
    )
    def get(self, request, workspace_id):
        return Response(WorkspaceSerializer(self.workspace).data)

    @extend_schema(
        summary="Rename a workspace or change its time zone",
        description="Change the name and/or the default time zone. Admins and owners; a "
        "member gets 403 PERMISSION_DENIED. Campaigns already created keep their own time "
        "zone.",
        request=WorkspaceWriteSerializer(partial=True),
        responses=WorkspaceSerializer,
    )
    def patch(self, request, workspace_id):
        serializer = WorkspaceWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        workspace = services.update_workspace(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(
        summary="Delete a workspace",
        description="Delete the workspace for every member: it leaves their lists, its "
        "routes answer 404 and its id as `X-Workspace-ID` is refused (403 "
        "WORKSPACE_ACCESS_DENIED) from then on. Owners only "
        "(403 PERMISSION_DENIED for admins and members).",
        responses={204: None},
    )
    def delete(self, request, workspace_id):
        services.delete_workspace(workspace=self.workspace, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List the members of a workspace",
        description="The workspace's active members with their user (id, email, name) and "
        "role, oldest first, paginated. Any member may read it; 404 if you are not a member.",
    )
)
class MemberViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    workspace_source = "path"
    lookup_url_kwarg = "member_id"
    queryset = WorkspaceMember.objects.filter(status=MemberStatus.ACTIVE)
    serializer_class = MemberSerializer

    def refine_queryset(self, queryset):
        return queryset.select_related("user").order_by("created_at")

    def required_role(self) -> str:
        # Changing roles needs an admin; removal is open to members so they can leave
        # (the service refuses a member removing anyone else).
        return Role.ADMIN if self.request.method == "PATCH" else super().required_role()

    @extend_schema(
        summary="Change a member's role",
        description="Set a member's role to `owner`, `admin` or `member`. Admins and owners; "
        "only an owner may change an owner's role or make someone an owner (403 "
        "PERMISSION_DENIED). Demoting the last owner is 409 LAST_OWNER: a workspace always "
        "keeps at least one.",
        request=MemberUpdateSerializer,
        responses=MemberSerializer,
        examples=[OpenApiExample("Make an admin", value={"role": "admin"}, request_only=True)],
    )
    def partial_update(self, request, workspace_id, member_id):
        member = self.get_object()  # a foreign id is a 404 before the body is looked at
        serializer = MemberUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.change_member_role(
            actor_membership=self.membership,
            member=member,
            role=serializer.validated_data["role"],
        )
        return Response(MemberSerializer(member).data)

    @extend_schema(
        summary="Remove a member, or leave",
        description="Remove someone from the workspace, or — with your own membership id — "
        "leave it. Anyone may leave; removing someone else takes an admin or owner, and "
        "removing an owner takes an owner (403 PERMISSION_DENIED otherwise). The last owner "
        "cannot leave or be removed (409 LAST_OWNER).",
        responses={204: None},
    )
    def destroy(self, request, workspace_id, member_id):
        services.remove_member(actor_membership=self.membership, member=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List a workspace's invitations",
        description="Every invitation of the workspace (pending, accepted or revoked) with "
        "its email, role, expiry and who sent it; never the token. Admins and owners.",
    )
)
class InvitationViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    workspace_source = "path"
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    idempotency_redacted_fields = ("token",)  # shown once; a replay confirms, without it
    queryset = Invitation.objects.all()
    serializer_class = InvitationSerializer

    def refine_queryset(self, queryset):
        return queryset.select_related("invited_by")

    @extend_schema(
        summary="Invite someone by email",
        description="Invite an email address to join with a role (default `member`). An "
        "email with the acceptance link is sent, and the single-use `token` is returned, "
        "shown only this once; the invitation expires after INVITATION_TTL_HOURS (72 by "
        "default). Admins and owners; inviting an owner takes an owner (403 "
        "PERMISSION_DENIED). Someone who is already a member: 409 ALREADY_MEMBER.",
        request=InvitationCreateSerializer,
        responses={201: InvitationCreatedSerializer},
        examples=[
            OpenApiExample(
                "Invite an admin",
                value={"email": "grace@example.com", "role": "admin"},
                request_only=True,
            )
        ],
    )
    def create(self, request, workspace_id):
        serializer = InvitationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, token = services.invite(
            actor_membership=self.membership, **serializer.validated_data
        )
        invitation.token = token
        return Response(
            InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED
        )


class InvitationAcceptView(IdempotentMixin, APIView):
    """Join the workspace the token was issued for. The caller's email must match it."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Accept an invitation",
        description="Join the workspace an invitation token was issued for, with the role it "
        "names; returns your new membership. Any signed-in user whose email is the one "
        "invited (403 PERMISSION_DENIED otherwise) — sign up or sign in with that address "
        "first. An unknown token: 404; used or revoked: 409 INVITATION_ALREADY_USED; expired: "
        "409 INVITATION_EXPIRED; already a member: 409 ALREADY_MEMBER.",
        request=None,
        responses=MemberSerializer,
    )
    def post(self, request, token):
        member = services.accept_invitation(token=token, user=request.user)
        return Response(MemberSerializer(member).data)
