from apps.common.errors import ApplicationError, Conflict


class WorkspaceRequired(ApplicationError):
    code = "WORKSPACE_REQUIRED"
    message = "This route needs a workspace: send the X-Workspace-ID header."


class WorkspaceAccessDenied(ApplicationError):
    status_code = 403
    code = "WORKSPACE_ACCESS_DENIED"
    # Deliberately the same for "no such workspace" and "not a member": no existence oracle.
    message = "The workspace does not exist or you are not an active member of it."


class LastOwner(Conflict):
    code = "LAST_OWNER"
    message = "A workspace must keep at least one owner."


class InvitationExpired(Conflict):
    code = "INVITATION_EXPIRED"
    message = "This invitation has expired; ask for a new one."


class InvitationUsed(Conflict):
    code = "INVITATION_ALREADY_USED"
    message = "This invitation has already been used or revoked."


class AlreadyMember(Conflict):
    code = "ALREADY_MEMBER"
    message = "This person is already a member of the workspace."
