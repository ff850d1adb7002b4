"""docker-compose.yml, read as data (no Docker engine runs here): safe by default."""

import re
import subprocess
import sys

import yaml
from django.conf import settings

COMPOSE = settings.BASE_DIR / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "dispatcher")


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_secrets_have_no_default_and_say_how_to_set_them():
    text = COMPOSE.read_text()
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "JWT_SIGNING_KEY"):
        assert not re.search(rf"\$\{{{name}:?-", text), f"{name} has a default in compose"
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS"):
        assert re.search(rf"\$\{{{name}:\?[^}}]*make compose-env", text), name


def test_each_process_group_writes_its_own_metrics_directory_and_web_merges_them_all():
    found = {name: services()[name]["environment"] for name in APP_SERVICES}
    directories = [env["PROMETHEUS_MULTIPROC_DIR"] for env in found.values()]
    assert len(set(directories)) == len(APP_SERVICES)
    merged = found["web"]["METRICS_MERGE_DIRS"].split(",")
    assert set(directories) <= set(merged)
    # One-off containers (migrate, the fake) would write PID 1 files into a group's directory.
    for name in ("migrate", "fake-fcm"):
        assert "PROMETHEUS_MULTIPROC_DIR" not in services()[name]["environment"]


def test_every_long_running_service_has_a_healthcheck():
    for name in APP_SERVICES:
        assert not (services()[name].get("healthcheck") or {}).get("disable"), name
    # web keeps the image's (/healthz); the others serve no HTTP and need their own.
    for name in ("worker", "dispatcher"):
        assert services()[name]["healthcheck"]["test"], name
    assert services()["dispatcher"]["healthcheck"]["test"][-1] == "check_dispatcher"


def test_compose_env_writes_fresh_secrets_once(tmp_path):
    script = (settings.BASE_DIR / "scripts" / "compose_env.py").read_text()
    copy = tmp_path / "scripts" / "compose_env.py"
    copy.parent.mkdir()
    copy.write_text(script)
    run = [sys.executable, str(copy)]
    subprocess.run(run, check=True, capture_output=True)
    first = (tmp_path / ".env").read_text()
    subprocess.run(run, check=True, capture_output=True)
    assert (tmp_path / ".env").read_text() == first  # kept: its keys encrypt data
    values = dict(line.split("=", 1) for line in first.splitlines() if "=" in line)
    from cryptography.fernet import Fernet

    Fernet(values["FIELD_ENCRYPTION_KEYS"])  # a valid key
    assert len(values["SECRET_KEY"]) >= 50
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
