"""OpenAPI description of the ingest-key authentication (loaded by AnalyticsConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.analytics.authentication import KEY_HEADER


class IngestKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.analytics.authentication.IngestKeyAuthentication"
    name = "IngestKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": KEY_HEADER,
            "description": "An ingest key of the workspace (ppk_live_...), made by an admin.",
        }
