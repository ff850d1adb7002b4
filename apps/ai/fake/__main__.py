"""Run the fake standalone:

python -m apps.ai.fake --port 8090 [--api-key KEY]
AI_PROVIDER=openai AI_BASE_URL=http://127.0.0.1:8090/v1 AI_API_KEY=KEY make run
"""

import argparse
import signal
import sys

from apps.ai.fake.server import DEFAULT_MODEL, FakeAIServer


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--api-key", default=None, help="require this bearer key (default: accept any)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)

    server = FakeAIServer(
        args.host, args.port, api_key=args.api_key, model=args.model, verbose=not args.quiet
    )
    # SIGTERM ends the process like Ctrl-C does, so `kill <pid>` shuts down cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"Fake OpenAI-compatible server on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
