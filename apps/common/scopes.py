"""What scope an API key needs for a request: declared on the view, read here.

A view declares `api_key_scopes`, a dict from an HTTP method ("GET", "POST", ...) or a
viewset action name ("save_template") to a scope; an action's entry wins over its method's.
HEAD and OPTIONS need what GET needs. A method with no entry refuses API keys (403), and so
does an action declared None (its method's scope does not open it).
Read as an attribute, so the ground floor imports no app (apps/workspaces owns the keys)."""

READ_ALIASES = {"HEAD": "GET", "OPTIONS": "GET"}


def declared_scope(view, method: str) -> str | None:
    declared = getattr(view, "api_key_scopes", None) or {}
    action = getattr(view, "action", None)
    if action and action in declared:
        return declared[action]
    method = method.upper()
    return declared.get(READ_ALIASES.get(method, method))
