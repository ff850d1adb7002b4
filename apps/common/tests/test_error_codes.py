"""Every error code the API can answer with is documented (README, "Error codes"), and every
documented one can still happen; the contract's codes (API.md) are among them. As
test_tenancy does for routes: the list is collected from the code, not kept by hand."""

import ast
import importlib
import pkgutil
import re
from pathlib import Path

from django.conf import settings

import apps
from apps.common.errors import ApplicationError
from apps.common.exceptions import DRF_CODES

BASE = Path(settings.BASE_DIR)
SKIPPED_PACKAGES = ("tests", "migrations", "fake")
RENDERERS = {"error_response", "error_body"}
# The codes API.md promises clients ("Codes used by clients").
CONTRACT_CODES = {
    "VALIDATION_ERROR", "NOT_AUTHENTICATED", "AUTHENTICATION_FAILED", "PERMISSION_DENIED",
    "WORKSPACE_REQUIRED", "WORKSPACE_ACCESS_DENIED", "NOT_FOUND", "METHOD_NOT_ALLOWED",
    "INVALID_TRANSITION", "CONFLICT", "THROTTLED", "FIREBASE_NOT_CONNECTED",
    "AI_PROVIDER_ERROR", "SERVER_ERROR",
}  # fmt: skip


def import_every_module() -> None:
    for module in pkgutil.walk_packages(apps.__path__, "apps."):
        if not set(module.name.split(".")) & set(SKIPPED_PACKAGES):
            importlib.import_module(module.name)


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def _callee(node: ast.Call) -> str | None:
    return getattr(node.func, "id", getattr(node.func, "attr", None))


def rendered_literal_codes() -> set[str]:
    """Codes passed as literals to the renderers outside the exception classes (Django's
    handlers, /metrics, the probes...), also through a helper that hands its own `code`
    parameter on to a renderer."""
    trees = [
        ast.parse(path.read_text())
        for path in [*(BASE / "apps").rglob("*.py"), *(BASE / "config").rglob("*.py")]
        if not set(path.relative_to(BASE).parts) & set(SKIPPED_PACKAGES)
    ]
    renderers = set(RENDERERS)
    while True:  # helpers of helpers, until nothing new
        wrappers = {
            function.name
            for tree in trees
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef)
            for call in ast.walk(function)
            if isinstance(call, ast.Call)
            and _callee(call) in renderers
            and call.args
            and isinstance(call.args[0], ast.Name)
            and call.args[0].id in {arg.arg for arg in function.args.args}
        }
        if wrappers <= renderers:
            break
        renderers |= wrappers
    return {
        call.args[0].value
        for tree in trees
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and _callee(call) in renderers
        and call.args
        and isinstance(call.args[0], ast.Constant)
    }


def raisable_codes() -> set[str]:
    import_every_module()
    classes = {ApplicationError, *subclasses(ApplicationError)}
    return (
        {cls.code for cls in classes}
        | {code for _, code in DRF_CODES}
        | rendered_literal_codes()
        | {"BAD_REQUEST", "SERVER_ERROR"}  # the handler's fallbacks
    )


def documented_codes() -> dict[str, str]:
    readme = (BASE / "README.md").read_text()
    section = readme.split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_every_raisable_code_is_documented_and_every_documented_one_raisable():
    raisable, documented = raisable_codes(), set(documented_codes())
    assert raisable - documented == set(), "raised but not in the README's Error codes"
    assert documented - raisable == set(), "documented but nothing raises it"


def test_the_contracts_codes_are_all_still_answered():
    assert raisable_codes() >= CONTRACT_CODES


def test_documented_statuses_match_the_classes():
    import_every_module()
    documented = documented_codes()
    for cls in {ApplicationError, *subclasses(ApplicationError)}:
        assert documented[cls.code] == str(cls.status_code), cls.__name__
