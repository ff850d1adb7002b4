"""OpenAPI generation: every operation documents the error shape and, where it applies,
the X-Workspace-ID security scheme — derived from the view, so no endpoint can forget either."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import AllowAny

from apps.common.scopes import declared_scope
from apps.common.serializers import ErrorSerializer

ERROR_DESCRIPTIONS = {
    "400": "VALIDATION_ERROR (details: field -> [messages]) or another 400 code",
    "401": "NOT_AUTHENTICATED or AUTHENTICATION_FAILED",
    "403": "PERMISSION_DENIED or WORKSPACE_ACCESS_DENIED",
    "404": "NOT_FOUND",
    "409": "CONFLICT, INVALID_TRANSITION or another state conflict; "
    "IDEMPOTENCY_REQUEST_IN_PROGRESS (a request with this Idempotency-Key is still running)",
    "422": "IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was sent with a different request",
    "429": "THROTTLED (see the Retry-After header)",
}

# The workspace a request acts in, as a security scheme: Swagger UI's "Authorize" sets it
# once, next to the bearer token, and clients see that the two always go together.
WORKSPACE_SCHEME = "WorkspaceID"
API_KEY_SCHEME = "ApiKey"  # apps/workspaces/schema.py
WORKSPACE_SCHEME_DEFINITION = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Workspace-ID",
    "description": "The id (UUID) of the workspace the request acts in; you must be an active "
    "member of it. Required, with the bearer token, on every workspace-scoped operation "
    "(query `workspace_id` is accepted as a fallback). Missing: 400 WORKSPACE_REQUIRED; "
    "unknown or not yours: 403 WORKSPACE_ACCESS_DENIED.",
}


# Path parameters are named after their resource, the same in every path (a test holds it);
# each is described once here rather than by whatever its view happens to derive.
PATH_PARAMETERS = {
    "workspace_id": "The workspace's id (see GET /workspaces).",
    "member_id": "A membership's `id` from GET /workspaces/{workspace_id}/members (not the "
    "user's id).",
    "campaign_id": "The campaign's id.",
    "template_id": "The template's id.",
    "generation_id": "The AI generation's `id` (returned by POST /ai/generate).",
    "ingest_key_id": "The ingest key's `id` (not its secret).",
    "api_key_id": "The API key's `id` (not its secret).",
    "notification_id": "The notification's id (`pushpilot_notification_id` in the push's data).",
    "token": "The invitation token, from the invitation email or the response that created it.",
    "device_token": "The device's FCM registration token, as the app registered it.",
    "webhook_endpoint_id": "The webhook endpoint's id.",
    "webhook_delivery_id": "A delivery-log entry's `id` (GET …/deliveries).",
}


def describe_path_parameters(result, generator, request, public):
    """Postprocessing hook: one description per path parameter name, in every path."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in PATH_PARAMETERS:
                    parameter["description"] = PATH_PARAMETERS[parameter["name"]]
    return result


# Every POST takes an Idempotency-Key (apps/common/idempotency.py): documented once, here.
IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="1 to 255 printable ASCII characters, unique per operation you mean to do "
    "once (a UUID). Retrying with the same key and the same request within 24 hours answers "
    "the first response again (header `Idempotent-Replayed: true`) instead of executing "
    "twice; the same key with a different request: 422 IDEMPOTENCY_KEY_REUSED; while the "
    "first is still running: 409 IDEMPOTENCY_REQUEST_IN_PROGRESS; malformed: 400 "
    "IDEMPOTENCY_KEY_INVALID. Keys are scoped to the caller and the workspace.",
)


class AutoSchema(SpectacularAutoSchema):
    def _is_workspace_scoped(self) -> bool:
        # The tenancy base (apps/workspaces/tenancy.py) names where a view's workspace comes
        # from; read as an attribute, so the ground floor imports no app.
        return getattr(self.view, "workspace_source", None) == "header"

    def _is_public(self) -> bool:
        return any(p is AllowAny for p in getattr(self.view, "permission_classes", ()))

    def get_description(self):
        # Docstrings are notes for developers, not documentation for the API's users: an
        # operation's description is only what its extend_schema(description=...) says.
        return ""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self.method == "POST":
            parameters = [*parameters, IDEMPOTENCY_KEY_PARAMETER]
        return parameters

    def get_auth(self):
        auths = super().get_auth()
        if not declared_scope(self.view, self.method):
            # An operation that declares no API key scope refuses keys: do not offer them.
            auths = [a for a in auths if API_KEY_SCHEME not in a] or auths
        if not self._is_workspace_scoped():
            return auths
        self.registry.register_on_missing(
            ResolvedComponent(
                name=WORKSPACE_SCHEME,
                type=ResolvedComponent.SECURITY_SCHEMA,
                object=AutoSchema,
                schema=WORKSPACE_SCHEME_DEFINITION,
            )
        )
        # One requirement object naming both: the token AND the workspace (not either). An
        # API key names its workspace: with it, the header is optional.
        return [
            requirement if API_KEY_SCHEME in requirement else {**requirement, WORKSPACE_SCHEME: []}
            for requirement in auths
        ]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400", "404", "429"]
        if not self._is_public():
            codes += ["401", "403"]
        if self.method in {"POST", "PUT", "PATCH", "DELETE"}:
            codes.append("409")
        if self.method == "POST":
            codes.append("422")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses
