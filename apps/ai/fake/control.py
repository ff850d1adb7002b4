"""Drives a running fake over its HTTP control endpoints (stdlib only, like the server)."""

import json
import urllib.request
from typing import Any


class FakeAIControl:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 (a local http:// URL we were given)
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def inject(self, *faults: dict[str, Any]) -> int:
        """Queue faults for the next chat requests; returns how many are pending."""
        return self._call("POST", "/_fake/faults", {"faults": list(faults)})["pending_faults"]

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_fake/requests")["requests"]

    def pending_faults(self) -> int:
        return self._call("GET", "/_fake/requests")["pending_faults"]

    def reset(self) -> None:
        self._call("POST", "/_fake/reset", {})
