"""Typed application errors. Each carries a stable `code` that clients may branch on.

Services raise these; the exception handler renders every one as
{"error": {"code", "message", "details"}} with the class's HTTP status.
"""

from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException


class ApplicationError(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "BAD_REQUEST"
    message = "The request could not be processed."

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        self.message = message or self.message
        self.details = details or {}
        super().__init__(detail=self.message, code=self.code)


class ValidationFailed(ApplicationError):
    code = "VALIDATION_ERROR"
    message = "Invalid data."

    @classmethod
    def on(cls, field: str, message: str) -> "ValidationFailed":
        return cls(details={field: [message]})


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "NOT_FOUND"
    message = "Not found."


class PermissionDenied(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "PERMISSION_DENIED"
    message = "You do not have permission to perform this action."


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "CONFLICT"
    message = "The request conflicts with the current state of the resource."


class WorkspaceRequired(ApplicationError):
    code = "WORKSPACE_REQUIRED"
    message = "This route needs a workspace: send the X-Workspace-ID header."


class WorkspaceAccessDenied(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "WORKSPACE_ACCESS_DENIED"
    # Deliberately the same for "no such workspace" and "not a member": no existence oracle.
    message = "The workspace does not exist or you are not an active member of it."


class InvalidTransition(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "INVALID_TRANSITION"
    message = "This state change is not allowed."

    def __init__(self, current: str, target: str, allowed: list[str]) -> None:
        super().__init__(
            f"Cannot go from '{current}' to '{target}'.",
            details={"from": current, "to": target, "allowed": sorted(allowed)},
        )
