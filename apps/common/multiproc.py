"""Prometheus multiprocess directories, without Django: gunicorn's config imports this before
any app is loaded. See apps/common/metrics.py for why each process group has its own."""

import glob
import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def start_metrics_dir() -> None:
    """A process group starts (its first process, before it forks any other): its
    multiprocess directory exists and keeps no file of a previous run's processes, whose
    counts would add up with the new ones. This process's own files stay (it may already
    have created them, and a container's PID 1 simply carries its counters on)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    own = f"_{os.getpid()}.db"
    for name in glob.glob(os.path.join(directory, "*.db")):
        if not name.endswith(own):
            os.remove(name)
