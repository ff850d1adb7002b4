from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

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


class WorkspaceListView(APIView):
    """The caller's workspaces, and creating a new one (the caller becomes its owner)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=WorkspaceSerializer(many=True))
    def get(self, request):
        workspaces = selectors.workspaces_of(request.user)
        return Response(WorkspaceSerializer(workspaces, many=True).data)

    @extend_schema(request=WorkspaceWriteSerializer, responses={201: WorkspaceSerializer})
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

    def get(self, request, workspace_id):
        return Response(WorkspaceSerializer(self.workspace).data)

    @extend_schema(request=WorkspaceWriteSerializer(partial=True), responses=WorkspaceSerializer)
    def patch(self, request, workspace_id):
        serializer = WorkspaceWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        workspace = services.update_workspace(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(responses={204: None})
    def delete(self, request, workspace_id):
        services.delete_workspace(workspace=self.workspace, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


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

    @extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer)
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

    @extend_schema(responses={204: None})
    def destroy(self, request, workspace_id, member_id):
        services.remove_member(actor_membership=self.membership, member=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    workspace_source = "path"
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    queryset = Invitation.objects.all()
    serializer_class = InvitationSerializer

    def refine_queryset(self, queryset):
        return queryset.select_related("invited_by")

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationCreatedSerializer})
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


class InvitationAcceptView(APIView):
    """Join the workspace the token was issued for. The caller's email must match it."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=MemberSerializer)
    def post(self, request, token):
        member = services.accept_invitation(token=token, user=request.user)
        return Response(MemberSerializer(member).data)
