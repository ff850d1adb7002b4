from django.urls import path

from apps.workspaces import api

members = api.MemberViewSet.as_view({"get": "list"})
member = api.MemberViewSet.as_view({"patch": "partial_update", "delete": "destroy"})
invitations = api.InvitationViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("workspaces", api.WorkspaceListView.as_view(), name="workspace-list"),
    path(
        "workspaces/<uuid:workspace_id>", api.WorkspaceDetailView.as_view(), name="workspace-detail"
    ),
    path("workspaces/<uuid:workspace_id>/members", members, name="workspace-members"),
    path(
        "workspaces/<uuid:workspace_id>/members/<uuid:member_id>", member, name="workspace-member"
    ),
    path("workspaces/<uuid:workspace_id>/invitations", invitations, name="workspace-invitations"),
    path(
        "invitations/<str:token>/accept",
        api.InvitationAcceptView.as_view(),
        name="invitation-accept",
    ),
]
