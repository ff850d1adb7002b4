"""The one base for every workspace-scoped endpoint. Tenancy cannot be forgotten:

* the workspace is resolved after DRF authentication (a Django middleware would still see
  an anonymous user for JWT requests), from `X-Workspace-ID` or `?workspace_id=`, or from
  the URL for the `/workspaces/{workspace_id}/...` routes;
* the caller must be an active member with at least the view's role — or an API key
  (X-API-Key) of that workspace: the key names its workspace (the header is then optional,
  and another workspace's id is refused like a non-member's), and the scope the view
  declares for the request (`api_key_scopes`, checked at authentication) replaces the role;
* `get_queryset()` always ends with `.filter(workspace=...)`, so another workspace's
  object is a 404 — and so do the compiled cursor pages of `CompiledWorkspaceListMixin`;
* subclasses cannot override the methods that do this (`__init_subclass__` refuses).
"""

import structlog
from rest_framework import generics, viewsets
from rest_framework.permissions import SAFE_METHODS

from apps.common.compiled import CompiledPage
from apps.common.errors import NotFound, PermissionDenied
from apps.common.idempotency import IdempotentMixin
from apps.workspaces.errors import WorkspaceAccessDenied, WorkspaceRequired
from apps.workspaces.keys import check_requested_workspace
from apps.workspaces.models import ApiKey, ApiKeyScope, Role, Workspace, role_at_least
from apps.workspaces.selectors import active_membership

WORKSPACE_HEADER = "X-Workspace-ID"
WORKSPACE_QUERY_PARAM = "workspace_id"
SEALED = ("check_permissions", "get_queryset", "initial", "_enter_with_api_key")


def requested_workspace_id(request) -> str | None:
    """The workspace id a request names in its header (or query), if any."""
    return request.headers.get(WORKSPACE_HEADER) or request.query_params.get(WORKSPACE_QUERY_PARAM)


class WorkspaceScopedMixin:
    # Where the workspace id comes from: "header" (X-Workspace-ID / ?workspace_id=) or
    # "path" (the `workspace_id` URL kwarg; a non-member gets 404, as for any foreign object).
    workspace_source = "header"
    # Minimum role for safe (read) methods and for everything else.
    read_role = Role.MEMBER
    write_role = Role.MEMBER
    # The field that ties a row of `queryset` to its workspace.
    workspace_field = "workspace"
    # The scope an API key needs, per HTTP method or action (apps/common/scopes.py); a
    # method without an entry refuses keys, and so does an action declared None (its
    # method's scope does not open it). Admin-only views should not declare any.
    api_key_scopes: dict[str, str | None] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        unknown = set(cls.api_key_scopes.values()) - {*ApiKeyScope.values, None}
        if unknown:
            raise TypeError(f"{cls.__name__} declares unknown API key scopes: {sorted(unknown)}")
        for name in SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(), which enforces tenancy; "
                    "use refine_queryset() or required_role() instead."
                )

    # --- hooks for subclasses ---------------------------------------------------------------
    def refine_queryset(self, queryset):
        """Add select_related/annotations/filters; the workspace filter is applied after."""
        return queryset

    def required_role(self) -> str:
        return self.read_role if self.request.method in SAFE_METHODS else self.write_role

    # --- sealed -----------------------------------------------------------------------------
    def initial(self, request, *args, **kwargs):
        request.workspace = None
        request.membership = None
        super().initial(request, *args, **kwargs)

    def check_permissions(self, request):
        super().check_permissions(request)  # authentication and the view's own permissions
        if isinstance(request.auth, ApiKey):
            self._enter_with_api_key(request, request.auth)
            return
        membership = active_membership(request.user, self._requested_workspace_id(request))
        if membership is None:
            if self.workspace_source == "path":
                raise NotFound()
            raise WorkspaceAccessDenied()
        request.membership = membership
        request.workspace = membership.workspace
        request._request.workspace = membership.workspace  # for the access-log line
        # Every log line of this request (and of the tasks it enqueues) names the workspace.
        structlog.contextvars.bind_contextvars(
            workspace_id=str(membership.workspace_id), user_id=str(request.user.pk)
        )
        if not role_at_least(membership.role, self.required_role()):
            raise PermissionDenied(
                f"This action needs the '{self.required_role()}' role in this workspace."
            )

    def _enter_with_api_key(self, request, key: ApiKey):
        from_path = self.workspace_source == "path"
        requested = (
            self.kwargs.get("workspace_id") if from_path else requested_workspace_id(request)
        )
        check_requested_workspace(key, requested, from_path=from_path)
        # No membership: the scope, already checked by ApiKeyAuthentication, is the role.
        request.workspace = key.workspace
        request._request.workspace = key.workspace  # for the access-log line
        structlog.contextvars.bind_contextvars(
            workspace_id=str(key.workspace_id), actor_key_id=str(key.pk)
        )

    def get_queryset(self):
        queryset = self.refine_queryset(super().get_queryset())
        return queryset.filter(**{self.workspace_field: self.request.workspace.pk})

    # --- helpers ----------------------------------------------------------------------------
    @property
    def workspace(self):
        return self.request.workspace

    @property
    def membership(self):
        return self.request.membership

    def _requested_workspace_id(self, request):
        if self.workspace_source == "path":
            return self.kwargs.get("workspace_id")
        workspace_id = requested_workspace_id(request)
        if not workspace_id:
            raise WorkspaceRequired()
        return workspace_id


class CompiledWorkspaceListMixin:
    """`list()` for a cursor-paginated collection whose unfiltered rows depend on the
    workspace alone: a request without filters reads its page through statements compiled
    once per connection and page shape (compiled.CompiledPage, pagination.compiled_page),
    not a queryset built and compiled each time. The rows are what `get_queryset()`
    answers: `refine_queryset` of the view's queryset, then the workspace filter. So
    `refine_queryset` must read neither the request nor the URL: it runs on a view that has
    neither, and fails there if it tries."""

    def list(self, request, *args, **kwargs):
        page = self.paginator.compiled_page(
            request, self, type(self)._workspace_page(), workspace_id=self.workspace.pk
        )
        if page is None:
            return super().list(request, *args, **kwargs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @classmethod
    def _workspace_page(cls) -> CompiledPage:
        page = cls.__dict__.get("_compiled_workspace_page")
        if page is None:

            def rows(workspace_id):
                view = cls()  # no request, no URL
                queryset = view.refine_queryset(cls.queryset.all())
                return queryset.filter(**{cls.workspace_field: workspace_id})

            page = CompiledPage(rows, workspace_id=Workspace._meta.pk)
            cls._compiled_workspace_page = page
        return page


class WorkspaceScopedAPIView(WorkspaceScopedMixin, IdempotentMixin, generics.GenericAPIView):
    """For workspace-scoped endpoints that are not a model collection."""


class WorkspaceScopedViewSet(WorkspaceScopedMixin, IdempotentMixin, viewsets.GenericViewSet):
    """For workspace-scoped collections; add the DRF mixins a resource needs."""
