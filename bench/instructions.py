"""Instructions per request: the list endpoints' Python work, counted by valgrind, not timed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushpilot_bench_lists \\
    REDIS_URL=redis://127.0.0.1:6379/14 \\
    .venv/bin/python bench/instructions.py [me campaigns ...]

On a shared machine a request's CPU time moves by a factor of two between minutes (bench/
README.md), so a change worth 5 % cannot be seen in req/s or CPU ms. The number of machine
instructions the Django process executes for a request barely moves: each endpoint is served
in-process (Django's test client, the bench owner's JWT, DEBUG off, one thread) under
`valgrind --tool=callgrind`, once with 5 requests and once with 25 after the same start, and
the difference / 20 is printed (PostgreSQL's and Redis's work happen in their own processes
and are not counted). Two runs of the same code agree within ≈ 0.2M.

It reads the database bench/lists.py filled (run that first; this changes nothing in it) and
needs valgrind on the PATH (Debian's `valgrind`). About a minute per endpoint, two at a time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from benchlib import PYTHON, django_env, setup_django
from lists import busiest_campaign

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pushpilot_bench_lists"
SETTINGS = """
from config.settings import *  # noqa: F403

REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"] = "1000000000/min"  # noqa: F405
ALLOWED_HOSTS = ["testserver"]
"""
FEW, MANY = 5, 25
ENDPOINTS = {
    "me": "/api/v1/me",
    "campaigns": "/api/v1/campaigns?page_size=50",
    "detail": "/api/v1/campaigns/{campaign}",
    "notifications": "/api/v1/notifications?page_size=50",
    "campaign-notifications": "/api/v1/campaigns/{campaign}/notifications?page_size=50",
    "jobs": "/api/v1/campaigns/{campaign}/jobs?page_size=50",
    "audit-logs": "/api/v1/audit-logs?page_size=50",
    "devices": "/api/v1/audience/devices?page_size=50",
    "events": "/api/v1/analytics/events?page_size=50",
}


def serve(name: str, requests: int) -> None:
    """The child under valgrind: 3 warm-up requests, then `requests` more."""
    import logging

    setup_django()
    logging.disable(logging.INFO)
    from django.test import Client

    from apps.accounts.models import User
    from apps.accounts.services import issue_tokens
    from apps.workspaces.models import Workspace

    user = User.objects.get(email="bench@example.com")
    workspace = Workspace.objects.get(name="Bench")
    campaign = busiest_campaign(os.environ["DATABASE_URL"], workspace.pk)  # as lists.py
    client = Client(
        HTTP_AUTHORIZATION=f"Bearer {issue_tokens(user)['access']}",
        HTTP_X_WORKSPACE_ID=str(workspace.pk),
    )
    path = ENDPOINTS[name].format(campaign=campaign)
    for _ in range(3 + requests):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.content[:300]!r}")


def count(name: str, requests: int, env: dict) -> int:
    """Instructions of one child run (valgrind's total)."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, __file__,
         "--child", name, str(requests)],
        env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"{name}: valgrind run failed\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("endpoints", nargs="*", help=f"some of {', '.join(ENDPOINTS)} [all]")
    args = parser.parse_args()
    unknown = set(args.endpoints) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints {sorted(unknown)}: choose from {', '.join(ENDPOINTS)}")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    env = django_env(database_url, "bench_instructions_settings", SETTINGS)
    print(f"{'endpoint':24s} {'instructions per request':>26s}", flush=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in args.endpoints or list(ENDPOINTS):
            few, many = pool.map(count, (name, name), (FEW, MANY), (env, env))
            print(f"{name:24s} {(many - few) / (MANY - FEW) / 1e6:25.2f}M", flush=True)


if __name__ == "__main__":
    main()
