"""Exercise a running app: send the declared HTTP requests and record what came back.

An ``Observation`` is what is compared between the two sides: the status, the selected
response headers and the body's bytes (as text when it is UTF-8, else its sha256).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from kiln.compat.model import HttpRequest
from kiln.net import http_client

MAX_BODY_TEXT = 4096  # longer bodies are compared by digest and shown shortened


@dataclass(frozen=True)
class Observation:
    """One response as compared: request, status, selected headers, body."""

    request: str  # "GET /api/info"
    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: str  # text, or "sha256:<hex> (<n> bytes)" for long or binary bodies
    error: str = ""  # the request failed (connection reset, timeout)

    def comparable(self) -> tuple[object, ...]:
        return (self.request, self.status, self.headers, self.body, self.error)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for ``-p 127.0.0.1:PORT:APPPORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _body(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and len(text) <= MAX_BODY_TEXT:
        return text
    return f"sha256:{hashlib.sha256(content).hexdigest()} ({len(content)} bytes)"


def observe(client: httpx.Client, base: str, request: HttpRequest) -> Observation:
    label = f"{request.method} {request.path}"
    headers = {"content-type": request.content_type} if request.content_type else {}
    try:
        response = client.request(
            request.method,
            base + request.path,
            content=request.body.encode() if request.body is not None else None,
            headers=headers,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return Observation(label, None, (), "", f"{type(exc).__name__}: {exc}")
    selected = tuple((name, response.headers.get(name, "")) for name in request.headers)
    return Observation(label, response.status_code, selected, _body(response.content))


def wait_until_answering(
    port: int, timeout: float, *, alive: Callable[[], bool], interval: float = 0.5
) -> str | None:
    """Poll ``127.0.0.1:port`` until an HTTP answer comes; the problem if none comes."""
    deadline = time.monotonic() + timeout
    with http_client(timeout=5.0) as client:
        while True:
            try:
                client.get(f"http://127.0.0.1:{port}/", follow_redirects=False)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                return None
            if not alive():
                return "the container exited before answering"
            if time.monotonic() >= deadline:
                return f"no HTTP answer on the published port within {timeout:.0f}s ({last})"
            time.sleep(interval)


def observe_all(port: int, requests: tuple[HttpRequest, ...]) -> tuple[Observation, ...]:
    base = f"http://127.0.0.1:{port}"
    with http_client(timeout=30.0) as client:
        return tuple(observe(client, base, r) for r in requests)
