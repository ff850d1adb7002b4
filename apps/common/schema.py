"""OpenAPI generation: every operation documents the error shape and, where it applies,
the X-Workspace-ID header — derived from the view, so no endpoint can forget either."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import AllowAny

from apps.common.serializers import ErrorSerializer

ERROR_DESCRIPTIONS = {
    "400": "VALIDATION_ERROR (details: field -> [messages]) or another 400 code",
    "401": "NOT_AUTHENTICATED or AUTHENTICATION_FAILED",
    "403": "PERMISSION_DENIED or WORKSPACE_ACCESS_DENIED",
    "404": "NOT_FOUND",
    "409": "CONFLICT, INVALID_TRANSITION or another state conflict",
    "429": "THROTTLED (see the Retry-After header)",
}


class AutoSchema(SpectacularAutoSchema):
    def _is_workspace_scoped(self) -> bool:
        # The tenancy base (apps/workspaces/tenancy.py) names where a view's workspace comes
        # from; read as an attribute, so the ground floor imports no app.
        return getattr(self.view, "workspace_source", None) == "header"

    def _is_public(self) -> bool:
        return any(p is AllowAny for p in getattr(self.view, "permission_classes", ()))

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self._is_workspace_scoped():
            parameters.append(
                OpenApiParameter(
                    "X-Workspace-ID",
                    type=str,
                    location=OpenApiParameter.HEADER,
                    required=True,
                    description="The workspace this request acts in (query `workspace_id` "
                    "is accepted as a fallback).",
                )
            )
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400", "404", "429"]
        if not self._is_public():
            codes += ["401", "403"]
        if self.method in {"POST", "PUT", "PATCH", "DELETE"}:
            codes.append("409")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses
