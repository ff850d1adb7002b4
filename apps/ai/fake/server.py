"""A fake OpenAI-compatible chat-completions server, for tests and local runs.

Real HTTP on a threaded stdlib server (no Django, no third-party packages), so the
`openai` SDK talks to it exactly as it talks to OpenAI, Ollama or vLLM.

Routes
  POST /v1/chat/completions   (also /chat/completions)  an OpenAI-shaped completion
  GET  /v1/models                                       the one model it serves
  POST /_fake/faults   {"faults": [fault, ...]}         queue faults for the next requests
  GET  /_fake/requests                                  the chat requests received so far
  POST /_fake/reset                                     forget faults and requests

A fault applies to exactly one chat request, in queue order; `"times": N` repeats it for
the next N requests. Kinds:
  {"kind": "timeout", "seconds": 2}        hold the response that long, then answer
  {"kind": "status", "status": 500, "retry_after": "1", "retry_after_ms": 50, "body": {...}}
  {"kind": "disconnect"}                   close the connection without answering
  {"kind": "malformed_body"}               HTTP 200 whose body is not JSON
  {"kind": "malformed_json"}               a completion whose content is broken JSON
  {"kind": "long_title", "extra": 40}      valid JSON, titles `extra` chars over the limit
  {"kind": "extra_text"}                   valid JSON inside prose and a code fence
  {"kind": "content", "content": "..."}    exactly this completion content

Without a fault the reply is valid: it reads the JSON request object that PushPilot sends
as the user message (`variants`, `max_title_chars`, `max_subtitle_chars`, `brief`) and
answers with that many variants within the limits.
"""

import json
import threading
import time
import uuid
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "fake-gpt"
FAULT_KINDS = {
    "timeout",
    "status",
    "disconnect",
    "malformed_body",
    "malformed_json",
    "long_title",
    "extra_text",
    "content",
}


class FakeState:
    """Faults waiting to be served and requests seen; shared by all handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []

    def add_faults(self, faults: list[dict[str, Any]]) -> int:
        for fault in faults:
            if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
                raise ValueError(f"unknown fault {fault!r}; kinds: {sorted(FAULT_KINDS)}")
        with self.lock:
            for fault in faults:
                for _ in range(int(fault.get("times", 1))):
                    self.faults.append(fault)
            return len(self.faults)

    def next_fault(self) -> dict[str, Any] | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": list(self.requests), "pending_faults": len(self.faults)}


def _request_params(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON request object PushPilot puts in its first user message, if any."""
    for message in messages:
        if message.get("role") != "user" or not isinstance(message.get("content"), str):
            continue
        try:
            value = json.loads(message["content"])
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def default_variants(params: dict[str, Any], title_overflow: int = 0) -> list[dict[str, str]]:
    n = int(params.get("variants", 1) or 1)
    max_title = int(params.get("max_title_chars", 65))
    max_subtitle = int(params.get("max_subtitle_chars", 240))
    topic = " ".join(str(params.get("brief", "your update")).split()) or "your update"
    variants = []
    for index in range(1, n + 1):
        title = _fit(f"Option {index}: {topic}", max_title)
        if title_overflow:
            title = (title + " " + "x" * (max_title + title_overflow))[: max_title + title_overflow]
        subtitle = _fit(f"Fake copy number {index} about {topic}. Tap to see more.", max_subtitle)
        variants.append({"title": title, "subtitle": subtitle})
    return variants


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeAIServer"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # --- plumbing -------------------------------------------------------------------------
    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired); nothing left to answer.
            self.close_connection = True

    def _error(self, status: int, message: str, error_type: str, code: str | None = None):
        self._send(status, {"error": {"message": message, "type": error_type, "code": code}})

    # --- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path == "/_fake/requests":
            self._send(200, self.server.state.snapshot())
        elif self.path.rstrip("/") in {"/v1/models", "/models"}:
            self._send(
                200,
                {
                    "object": "list",
                    "data": [{"id": self.server.model, "object": "model", "owned_by": "fake"}],
                },
            )
        else:
            self._error(404, f"No route {self.path}", "invalid_request_error", "not_found")

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError:
            self._error(400, "Body is not JSON.", "invalid_request_error")
            return
        path = self.path.rstrip("/")
        if path == "/_fake/faults":
            try:
                pending = self.server.state.add_faults(body.get("faults", []))
            except (ValueError, AttributeError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"pending_faults": pending})
        elif path == "/_fake/reset":
            self.server.state.reset()
            self._send(200, {"ok": True})
        elif path in {"/v1/chat/completions", "/chat/completions"}:
            self._chat(body)
        else:
            self._error(404, f"No route {self.path}", "invalid_request_error", "not_found")

    def _chat(self, body: dict[str, Any]) -> None:
        auth = self.headers.get("Authorization", "")
        self.server.state.record(
            {
                "at": time.time(),
                "path": self.path,
                "authorized": self.server.api_key is None
                or auth == f"Bearer {self.server.api_key}",
                "body": body,
            }
        )
        if self.server.api_key is not None and auth != f"Bearer {self.server.api_key}":
            # Like OpenAI, echo the key that was sent: it proves callers never relay this text.
            presented = auth.removeprefix("Bearer ")
            self._error(
                401,
                f"Incorrect API key provided: {presented}. You can find your API key in the "
                "dashboard.",
                "invalid_request_error",
                "invalid_api_key",
            )
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, "'messages' is required.", "invalid_request_error")
            return

        params = _request_params(messages)
        fault = self.server.state.next_fault() or {}
        kind = fault.get("kind")
        if kind == "timeout":
            time.sleep(float(fault.get("seconds", 2)))
        elif kind == "status":
            headers = {}
            if fault.get("retry_after") is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            if fault.get("retry_after_ms") is not None:
                headers["retry-after-ms"] = str(fault["retry_after_ms"])
            status = int(fault.get("status", 500))
            payload = fault.get("body") or {
                "error": {
                    "message": f"Injected {status} ({HTTPStatus(status).phrase}).",
                    "type": "server_error" if status >= 500 else "invalid_request_error",
                    "code": None,
                }
            }
            self._send(status, payload, headers=headers)
            return
        elif kind == "disconnect":
            self.close_connection = True
            self.connection.close()
            return
        elif kind == "malformed_body":
            self._send(200, raw=b'{"id": "chatcmpl-broken", "choices": [')
            return

        variants = default_variants(params)
        if kind == "malformed_json":
            content = '{"variants": [{"title": "Unfinished business", "subtitle": "and then'
        elif kind == "long_title":
            content = json.dumps(
                {"variants": default_variants(params, int(fault.get("extra", 40)))}
            )
        elif kind == "extra_text":
            content = (
                "Sure! Here are your notifications:\n```json\n"
                + json.dumps({"variants": variants}, indent=2)
                + "\n```\nLet me know if you want more."
            )
        elif kind == "content":
            content = str(fault.get("content", ""))
        else:
            content = json.dumps({"variants": variants})

        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(content) // 4 + 1
        self._send(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or self.server.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class FakeAIServer(ThreadingHTTPServer):
    """`with FakeAIServer() as fake:` serves on an ephemeral port until the block ends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), Handler)
        self.api_key = api_key
        self.model = model
        self.verbose = verbose
        self.state = FakeState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What AI_BASE_URL should be set to."""
        return f"{self.url}/v1"

    def start(self) -> "FakeAIServer":
        # A short poll interval makes stop() (and so each test that owns a server) quick.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-ai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeAIServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
