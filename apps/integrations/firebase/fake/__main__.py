"""Run the fake FCM server standalone.

    python -m apps.integrations.firebase.fake --host 127.0.0.1 --port 9099 [--token-ttl 3600]

Prints its base URL on stdout and serves until Ctrl-C (or SIGTERM). It trusts only service
accounts registered with ``POST /_fake/accounts``; ``make demo-account`` (``manage.py
demo_service_account``) makes one, registers it and prints the body for
``PUT /api/v1/integrations/firebase``. Point FCM_BASE_URL at the printed URL.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import FakeFCM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apps.integrations.firebase.fake",
        description="Local stand-in for FCM HTTP v1 and Google's OAuth2 token endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument(
        "--token-ttl", type=int, default=3600, help="lifetime of issued access tokens (s)"
    )
    parser.add_argument(
        "--subscription-rate",
        type=int,
        default=3000,
        help="new topic subscriptions per project per rolling second (over it: 429)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    fake = FakeFCM(
        host=args.host,
        port=args.port,
        token_ttl=args.token_ttl,
        verbose=args.verbose,
        subscription_rate=args.subscription_rate,
    )
    try:
        fake.start()
    except OSError as exc:
        print(f"fake FCM: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(fake.base_url, flush=True)
    print(
        f"fake FCM: token endpoint {fake.token_uri}; register accounts with "
        f"POST {fake.base_url}/_fake/accounts; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    # Ctrl-C stops it even when started with SIGINT ignored (inherited from a shell that ran
    # its parent in the background, as `cmd &` in a script does): Python then leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
