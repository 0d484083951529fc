"""The site's guard: read-only methods, strict response headers, per-client rate limits.

One ASGI middleware in front of everything (pages, JSON API, the registry front door):

* a method other than GET or HEAD is answered 405 before any route runs;
* each client (the peer address) has a token bucket of ``burst`` requests refilled at
  ``rate`` per second; an empty bucket gets 429 with ``Retry-After``;
* every response carries a Content-Security-Policy without scripts (pages are
  server-rendered; only the site's own stylesheet and images load),
  ``X-Content-Type-Options: nosniff``, ``frame-ancestors 'none'`` (and
  ``X-Frame-Options: DENY`` for older browsers) and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
READ_METHODS = frozenset({"GET", "HEAD"})
_MAX_CLIENTS = 10_000


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets per client: ``burst`` requests at once, ``rate`` per second after."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= _MAX_CLIENTS:  # forget idle clients, not memory
                    self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < 60}
                bucket = self._buckets[client] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


class Guard:
    """ASGI middleware: methods, rate limits and security headers (module docstring)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *SECURITY_HEADERS]
            await send(message)

        method = scope["method"]
        if method not in READ_METHODS:
            await _refuse(send_with_headers, 405, "UNSUPPORTED", "this site is read-only",
                          [(b"allow", b"GET, HEAD")])  # fmt: skip
            return
        client = scope.get("client")
        wait = self.limiter.take(client[0] if client else "unknown")
        if wait > 0:
            retry = str(max(1, math.ceil(wait))).encode()
            await _refuse(send_with_headers, 429, "TOOMANYREQUESTS", "rate limit exceeded",
                          [(b"retry-after", retry)])  # fmt: skip
            return
        await self.app(scope, receive, send_with_headers)


async def _refuse(
    send: Send, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
