"""What the repository holds, and what the wheel (so the image) ships."""

import shutil
import subprocess

import pytest
from django.conf import settings

from scripts.check_image import wheel_problems

ROOT = settings.BASE_DIR
# Files processes write at run time: kombu's file-system broker (var/broker* with our
# settings, else its defaults in the working directory), SQLite, caches.
RUNTIME = [
    "var/pushpilot.sqlite3",
    "var/broker/msg.json",
    "var/broker-control/celery.pidbox.exchange",
    "control/celery.pidbox.exchange",
    "control/default.exchange",
    "data_in/msg.json",
    "data_out/msg.json",
    "processed/msg.json",
    ".schemathesis/default/cache/manifest.json",
    ".hypothesis/examples/x",
]


def git(*args: str) -> str:
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def test_no_runtime_file_is_tracked_and_git_ignores_them_all():
    tracked = git("ls-files").splitlines()
    assert len(tracked) > 100
    assert "apps/ai/fake/control.py" in tracked  # source, whatever its name
    runtime = [
        path
        for path in tracked
        if path.split("/")[0] in {p.split("/")[0] for p in RUNTIME}
        or path.endswith((".exchange", ".sqlite3"))
    ]
    assert runtime == []
    ignored = git("check-ignore", "--no-index", *RUNTIME).splitlines()
    assert ignored == RUNTIME
    assert git("check-ignore", "--no-index", "apps/ai/fake/control.py") == ""


def test_the_wheel_check_refuses_tests_and_missing_modules(tmp_path):
    for path in ("config/settings.py", "apps/common/ops.py", "apps/common/tests/test_ops.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert wheel_problems(["config/settings.py", "apps/common/ops.py"], tmp_path) == []
    names = ["config/settings.py", "apps/common/ops.py", "apps/common/tests/test_ops.py"]
    names += ["apps/x/conftest.py", "apps/x/tests/data/a.json"]
    assert wheel_problems(names, tmp_path) == [
        "ships apps/common/tests/test_ops.py",
        "ships apps/x/conftest.py",
        "ships apps/x/tests/data/a.json",
    ]
    assert wheel_problems(["config/settings.py"], tmp_path) == ["lacks apps/common/ops.py"]
