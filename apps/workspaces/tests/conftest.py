"""API keys for the workspace tests: made by the service (as an admin would), used over HTTP."""

import pytest


@pytest.fixture
def make_api_key(owner):
    from apps.workspaces import keys

    def _make(workspace, scopes, name="CI pipeline", **fields):
        return keys.create_api_key(
            workspace=workspace, actor=owner, name=name, scopes=list(scopes), **fields
        )

    return _make


@pytest.fixture
def key_client():
    """A server calling with an API key: no JWT, no workspace header."""
    from rest_framework.test import APIClient

    def _client(secret: str, workspace=None):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        if workspace is not None:
            client.defaults["HTTP_X_WORKSPACE_ID"] = str(workspace.pk)
        return client

    return _client
