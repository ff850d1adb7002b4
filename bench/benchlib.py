"""What the benchmark scripts share: paths, logging, ports, percentiles, a scratch database,
the server (gunicorn as shipped) and its environment."""

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def recreate_database(database_url: str) -> None:
    """Drop and create the benchmark's own database (refused unless its name says bench)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


class Gunicorn:
    def __init__(self, log_dir: Path, env: dict[str, str], workers: int, threads: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "gunicorn.log"
        self.log_file = open(self.log_path, "a")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "config.wsgi", "-c", "gunicorn.conf.py",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
             "--threads", str(threads)],
            cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker has booted: /healthz answers as soon as one has, while another
        may still be importing the application (seconds of CPU on a small machine), which
        would leave the first measurement one worker short."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    self._wait_workers_idle(deadline)
                    return
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not start:\n" + self.log_path.read_text()[-3000:])

    def _wait_workers_idle(self, deadline: float) -> None:
        """Booting is CPU-bound: the workers are up once none of them is busy any more."""
        previous = None
        while time.monotonic() < deadline:
            workers = child_pids(self.process.pid)
            now = [cpu_seconds([pid]) for pid in workers]
            unchanged = previous is not None and len(now) == len(previous)
            if unchanged and all(b - a < 0.02 for a, b in zip(previous, now, strict=True)):
                return
            previous = now
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def django_env(database_url: str, settings_module: str, settings_text: str) -> dict[str, str]:
    """The environment of the benchmark's server and of this process (which makes the
    fixtures and JWTs with the same settings): DEBUG off (no query log kept per request),
    config.settings plus `settings_text` as `settings_module`, in a temporary directory."""
    settings_dir = Path(tempfile.mkdtemp(prefix="pushpilot-bench-settings-"))
    (settings_dir / f"{settings_module}.py").write_text(settings_text)
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", uuid.uuid4().hex * 2),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONPATH": os.pathsep.join([str(settings_dir), str(ROOT)]),
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    sys.path.insert(0, str(settings_dir))
    return env


def child_pids(parent: int) -> list[int]:
    """The gunicorn workers: the master's children (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(entry.name))
    return children


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of `pids` (every thread), from /proc."""
    return sum(_stat_ticks(pid)[0] for pid in pids) / os.sysconf("SC_CLK_TCK")


def workers_cpu_seconds(master: int) -> float:
    """User + system CPU of every worker `master` has had: the live ones' own, and (in the
    master's children's times) those it recycled (gunicorn's max_requests) and reaped."""
    while True:
        try:
            workers = child_pids(master)
            live = sum(_stat_ticks(pid)[0] for pid in workers)
            return (live + _stat_ticks(master)[1]) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            continue  # a worker went between the listing and its reading: read all again


def _stat_ticks(pid: int) -> tuple[int, int]:
    """(own user + system, reaped children's user + system) clock ticks of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
