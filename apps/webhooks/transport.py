"""One webhook HTTP attempt, through the SSRF guard (addresses.py).

The host is resolved once and checked; the request goes to the checked IP itself, with the
`Host` header of the URL and, for https, the URL's name as TLS server name (SNI and
certificate verification use the name, not the IP). No proxy from the environment (it would
connect elsewhere), no redirects (a 3xx is a failed attempt with its status), one timeout
for connect/read/write, and only the first WEBHOOK_RESPONSE_HEAD_BYTES of the body read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from django.conf import settings

from apps.common.retry import retry_after_seconds
from apps.webhooks.addresses import AddressRefused, checked_address

USER_AGENT = "PushPilot-Webhooks/1.0"
# The response headers the delivery log keeps.
KEPT_HEADERS = ("content-type", "content-length", "retry-after", "location", "server")


@dataclass
class Result:
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    headers: dict = field(default_factory=dict)
    body_head: str = ""
    error: str = ""
    retry_after: float | None = None


def post(url: str, body: str, headers: dict) -> Result:
    started = time.monotonic()
    target = httpx.URL(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        address = checked_address(target.host, port)
    except AddressRefused as exc:
        return Result(ok=False, error=str(exc))
    pinned = target.copy_with(host=address)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    request_headers = {
        **headers,
        "host": target.netloc.decode("ascii"),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    limit = settings.WEBHOOK_RESPONSE_HEAD_BYTES
    try:
        with httpx.Client(
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
        ) as client:
            request = client.build_request(
                "POST", pinned, content=body.encode(), headers=request_headers,
                extensions=extensions,
            )  # fmt: skip
            response = client.send(request, stream=True)
            try:
                head = b""
                for chunk in response.iter_raw():
                    head += chunk
                    if len(head) >= limit:
                        break
            finally:
                response.close()
    except httpx.TimeoutException as exc:
        return Result(ok=False, latency_ms=_ms(started), error=f"timed out ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Result(ok=False, latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:500])
    status = response.status_code
    kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    result = Result(
        ok=200 <= status < 300,
        status_code=status,
        latency_ms=_ms(started),
        headers=kept,
        body_head=head[:limit].decode("utf-8", errors="replace"),
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )
    if 300 <= status < 400:
        result.error = f"HTTP {status}: redirects are not followed"
    elif not result.ok:
        result.error = f"HTTP {status}"
    return result


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
