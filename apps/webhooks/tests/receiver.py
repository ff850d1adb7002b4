"""A real HTTP receiver for webhook tests: a threaded http.server on 127.0.0.1 that records
every request and answers from a script. It imports nothing from the project."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    status: int  # what the receiver answered (or tried to); 0 while it has not


@dataclass
class Receiver:
    """`script`: what to answer, one action per request, then `default`. An action is an
    int (the status), ("sleep", seconds, status) or ("redirect", url)."""

    script: deque = field(default_factory=deque)
    default: int | tuple = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                received = Received(self.path, headers, body, 0)
                with receiver.lock:  # in order of arrival
                    action = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.requests.append(received)
                status, location = action, None
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    status = action[2]
                elif isinstance(action, tuple) and action[0] == "redirect":
                    status, location = 302, action[1]
                received.status = status
                try:
                    self.send_response(status)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Type", "text/plain")
                    text = f"answered {status}".encode()
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the client gave up (a timeout): nothing to answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Received]:
        """The requests answered with a 2xx."""
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.requests)
