from django.urls import path

from apps.workspaces import api, api_keys_api, retention_api

members = api.MemberViewSet.as_view({"get": "list"})
member = api.MemberViewSet.as_view({"patch": "partial_update", "delete": "destroy"})
invitations = api.InvitationViewSet.as_view({"get": "list", "post": "create"})
api_keys = api_keys_api.ApiKeyViewSet.as_view({"get": "list", "post": "create"})
api_key = api_keys_api.ApiKeyViewSet.as_view({"get": "retrieve", "delete": "destroy"})
api_key_rotate = api_keys_api.ApiKeyViewSet.as_view({"post": "rotate"})

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
    path("api-keys", api_keys, name="api-key-list"),
    path("api-keys/<uuid:api_key_id>", api_key, name="api-key-detail"),
    path("api-keys/<uuid:api_key_id>/rotate", api_key_rotate, name="api-key-rotate"),
    path("retention", retention_api.RetentionPolicyView.as_view(), name="retention-policy"),
    path(
        "invitations/<str:token>/accept",
        api.InvitationAcceptView.as_view(),
        name="invitation-accept",
    ),
]
