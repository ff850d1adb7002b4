"""OpenAPI description of the API key authentication (loaded by WorkspacesConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.workspaces.authentication import API_KEY_HEADER


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.workspaces.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": "An API key of the workspace (ppa_live_...), made by an admin, for "
            "server-to-server calls instead of a bearer token. It names its workspace, so "
            "X-Workspace-ID is optional (if sent, it must be the key's). Only operations "
            "that list this scheme accept keys, each with the scope the README's table "
            "gives (`<area>:write` includes `<area>:read`); a key without it: 403 "
            "PERMISSION_DENIED naming the scope.",
        }
