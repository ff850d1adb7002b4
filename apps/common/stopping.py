"""A polite stop for long-running commands: SIGINT or SIGTERM ends the current round, not
the process mid-write."""

import signal
import threading
from collections.abc import Callable


def catch_stop_signals() -> Callable[[], bool]:
    """From now on SIGINT and SIGTERM are caught; the function returned says whether one came."""
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    return stopped.is_set
