"""`make run`: the whole of PushPilot on one machine with nothing installed but Python.

Starts the web server, a Celery worker (file-system broker, no server needed), the
dispatcher (the scheduler) and — unless FCM_BASE_URL points elsewhere — the fake FCM, as
child processes; streams their output, and stops all of them on Ctrl-C or as soon as one
of them dies. On Linux the children also end when the runner itself is killed (kill -9, a
closed terminal): none is left holding a port.

The fake FCM listens on FAKE_FCM_PORT, else on 9099 when it is free, else on any free port;
its URL is printed and written to var/fake-fcm.url (where `make demo-account` finds it).
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.common.stopping import catch_stop_signals


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]


DEFAULT_FAKE_FCM_PORT = 9099
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def fake_fcm_port() -> int:
    """FAKE_FCM_PORT if set; else 9099 when it is free; else any free port."""
    if os.environ.get("FAKE_FCM_PORT"):
        return int(os.environ["FAKE_FCM_PORT"])
    for candidate in (DEFAULT_FAKE_FCM_PORT, 0):
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", candidate))
            return sock.getsockname()[1]
    raise RuntimeError("no free port for the fake FCM")


def embedded_services(port: int, *, with_fake_fcm: bool, fake_port: int = 0) -> list[Service]:
    python = sys.executable
    fake = [
        Service(
            "fake-fcm",
            [python, "-m", "apps.integrations.firebase.fake", "--port", str(fake_port)],
        )
    ]
    return (fake if with_fake_fcm else []) + [
        Service(
            "web",
            [
                python, "-m", "gunicorn", "config.wsgi:application", "--config", "gunicorn.conf.py",
                "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
            ],
        ),
        # Pool and processes come from settings: one process per core (WORKER_CONCURRENCY).
        Service(
            "worker",
            [
                python, "-m", "celery", "-A", "config", "worker", "--queues",
                "notifications,default", "--loglevel", "INFO", "--without-gossip",
                "--without-mingle",
            ],
        ),
        Service("dispatcher", [python, "manage.py", "dispatch"]),
    ]  # fmt: skip


class Command(BaseCommand):
    help = "Run the web server, a worker and the scheduler on embedded defaults (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, port: int, **options):
        (settings.VAR_DIR / "broker").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # No FCM configured: send to the local fake, so the whole flow works offline.
        with_fake_fcm = "FCM_BASE_URL" not in os.environ
        # One /metrics for all processes: each group writes its own metrics directory, and
        # the web server merges them all (apps/common/metrics.py).
        metrics_root = Path(
            os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.VAR_DIR / "prometheus"
        )
        fake_port = fake_fcm_port() if with_fake_fcm else 0
        if with_fake_fcm:
            env["FCM_BASE_URL"] = f"http://127.0.0.1:{fake_port}"
            (settings.VAR_DIR / "fake-fcm.url").write_text(env["FCM_BASE_URL"])
        children: dict[str, subprocess.Popen] = {}
        stopping = catch_stop_signals()
        try:
            services = embedded_services(port, with_fake_fcm=with_fake_fcm, fake_port=fake_port)
            merged = ",".join(str(metrics_root / service.name) for service in services)
            for service in services:
                metrics = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_root / service.name),
                           "METRICS_MERGE_DIRS": merged}  # fmt: skip
                (metrics_root / service.name).mkdir(parents=True, exist_ok=True)
                # Own process group: Ctrl-C reaches us once, and we stop the children in order.
                children[service.name] = subprocess.Popen(  # noqa: S603 (fixed argv)
                    service.argv, env={**env, **metrics}, cwd=settings.BASE_DIR,
                    start_new_session=True, preexec_fn=_end_with(os.getpid()),
                )  # fmt: skip
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nPushPilot is running on http://127.0.0.1:{port}\n"
                    f"  API docs: http://127.0.0.1:{port}/api/docs\n"
                    f"  Health:   http://127.0.0.1:{port}/healthz\n"
                    + (
                        f"  Fake FCM: {env['FCM_BASE_URL']}/_fake/messages (what was sent)\n"
                        "  Connect it: make demo-account (prints the body for "
                        "PUT /api/v1/integrations/firebase)\n"
                        if with_fake_fcm
                        else ""
                    )
                    + "Press Ctrl-C to stop.\n"
                )
            )
            exited = None
            while not stopping() and exited is None:
                time.sleep(0.5)
                exited = next((n for n, p in children.items() if p.poll() is not None), None)
            if exited is not None:
                self.stderr.write(
                    f"{exited} exited with code {children[exited].returncode}; stopping."
                )
        finally:
            for process in children.values():
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + 10
            for process in children.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
        if exited is not None and not stopping():
            sys.exit(1)


def _end_with(parent: int):
    """A preexec_fn: (Linux) the child gets SIGTERM when the runner dies, however it dies.
    Elsewhere nothing: Ctrl-C and a normal exit still stop the children."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the line above
            os._exit(1)

    return arrange
