import uuid

from django.db.models import QuerySet

from apps.common.compiled import CompiledFirst
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


def _active_memberships(workspace_id, user_id) -> QuerySet[WorkspaceMember]:
    return WorkspaceMember.objects.select_related("workspace").filter(
        workspace_id=workspace_id,
        user_id=user_id,
        status=MemberStatus.ACTIVE,
        workspace__is_deleted=False,
    )


# Every workspace request runs this lookup (the tenancy check): compiled once per connection,
# it costs ~0.1 ms of CPU instead of ~0.6 ms. Still one query per request, nothing cached
# across requests: a removed member is refused by the next request.
_first_active_membership = CompiledFirst(
    _active_memberships,
    workspace_id=Workspace._meta.pk,
    user_id=WorkspaceMember._meta.get_field("user").target_field,
)


def active_membership(user, workspace_id) -> WorkspaceMember | None:
    """The user's active membership of a live workspace (with it), or None — one query."""
    workspace_uuid = parse_uuid(workspace_id)
    if workspace_uuid is None or not user.is_authenticated:
        return None
    return _first_active_membership(workspace_id=workspace_uuid, user_id=user.pk)


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
