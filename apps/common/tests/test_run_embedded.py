"""`make run` as a newcomer meets it: port 9099 already taken, and a runner that is killed
without a chance to clean up. Real processes, the embedded defaults (SQLite, file broker)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: prctl"),
    pytest.mark.xdist_group("real_processes"),  # a whole stack: with the other real processes
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_make_run_takes_another_port_and_its_children_end_with_it(tmp_path):
    env = {**os.environ, "PUSHPILOT_VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "REDIS_URL": "",
           "CELERY_BROKER_URL": "", "ENVIRONMENT": "local"}  # fmt: skip
    for name in ("FAKE_FCM_PORT", "FCM_BASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR,
                   env=env, check=True)  # fmt: skip
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 9099))
        taken.listen()
    except OSError:
        pass  # already taken by something else: the same situation
    log = tmp_path / "run.log"
    runner = subprocess.Popen(
        [sys.executable, "manage.py", "run_embedded", "--port", str(_free_port())],
        cwd=settings.BASE_DIR, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "dispatcher_started" not in log.read_text() or "ready." not in log.read_text():
            assert runner.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        url = (tmp_path / "fake-fcm.url").read_text()
        assert not url.endswith(":9099") and f"Fake FCM: {url}" in log.read_text()
        children = _children(runner.pid)
        assert len(children) == 4  # fake FCM, web, worker, dispatcher
        runner.kill()  # kill -9: the runner cleans nothing up
        runner.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)], "children outlived the runner"
    finally:
        taken.close()
        if runner.poll() is None:
            runner.kill()
