import uuid

from django.db.models import QuerySet

from apps.workspaces.models import (
    Invitation,
    MemberStatus,
    Workspace,
    WorkspaceMember,
)


def parse_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def active_membership(user, workspace_id) -> WorkspaceMember | None:
    """The user's active membership of a live workspace, or None — one query."""
    workspace_uuid = parse_uuid(workspace_id)
    if workspace_uuid is None or not user.is_authenticated:
        return None
    return (
        WorkspaceMember.objects.select_related("workspace")
        .filter(
            workspace_id=workspace_uuid,
            user=user,
            status=MemberStatus.ACTIVE,
            workspace__is_deleted=False,
        )
        .first()
    )


def workspaces_of(user) -> QuerySet[Workspace]:
    return Workspace.objects.filter(
        members__user=user, members__status=MemberStatus.ACTIVE
    ).order_by("created_at")


def members_of(workspace: Workspace) -> QuerySet[WorkspaceMember]:
    return WorkspaceMember.objects.filter(
        workspace=workspace, status=MemberStatus.ACTIVE
    ).select_related("user")


def invitations_of(workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.filter(workspace=workspace).select_related("invited_by")
