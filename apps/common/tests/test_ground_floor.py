"""`apps.common` is the ground floor: every app builds on it, so it imports none of them
(DESIGN.md §3). Read from the source, so a late import inside a function counts too."""

import ast
from pathlib import Path

from django.conf import settings

COMMON = Path(settings.BASE_DIR) / "apps" / "common"


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_common_imports_no_other_app():
    offending = {
        f"{path.relative_to(COMMON)}: {module}"
        for path in COMMON.rglob("*.py")
        if "tests" not in path.relative_to(COMMON).parts
        for module in imported_modules(path)
        if module.startswith("apps.") and not module.startswith("apps.common")
    }
    assert not offending, sorted(offending)
