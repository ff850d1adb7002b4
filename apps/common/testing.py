"""Helpers for tests across apps."""

import threading
import time

from django.db import connection


def race(*operations, expected: tuple[type[BaseException], ...] = (Exception,), timeout=60):
    """Run the operations at the same moment, each in its own thread (and so its own database
    connection); return each one's result, or the `expected` exception it raised."""
    barrier = threading.Barrier(len(operations))
    outcomes: list = [None] * len(operations)

    def run(index, operation):
        try:
            barrier.wait()
            outcomes[index] = operation()
        except expected as exc:  # reported through the outcome, asserted by the caller
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(operations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return outcomes


def wait_until(check, timeout: float = 60.0, what: str = "condition", every: float = 0.1):
    """Poll `check()` every `every` seconds until it is true; fail after `timeout` seconds
    (for tests that watch real processes)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
