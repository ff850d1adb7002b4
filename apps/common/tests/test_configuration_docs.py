"""The README's configuration table lists every environment variable the code reads."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
READS = {
    "config/settings.py": re.compile(r"\benv(?:_int|_bool|_list)?\(\s*\"([A-Z][A-Z0-9_]+)\""),
    "gunicorn.conf.py": re.compile(r"os\.environ\.get\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']"),
    "apps/common/management/commands/run_embedded.py": re.compile(
        r"os\.environ(?:\.get)?\(?\[?\s*[\"']([A-Z][A-Z0-9_]+)[\"']"
    ),
}


def documented() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration (environment variables)", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_variable_read_is_in_the_readme_table():
    read = {
        name
        for path, pattern in READS.items()
        for name in pattern.findall((ROOT / path).read_text())
    }
    assert len(read) > 60
    assert sorted(read - documented()) == []
