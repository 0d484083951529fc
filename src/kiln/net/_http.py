"""HTTP fetching with bounded size, retry on transport faults, conditional requests."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from kiln import __version__
from kiln.errors import EnvironmentProblem, TransportError

DEFAULT_MAX_BYTES = 2 * 1024**3
#: statuses a retry can fix (RFC 9110 408/5xx, RFC 8470 425 Too Early, RFC 6585 429)
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class HttpStatusError(TransportError):
    """The server answered with an error status that retrying cannot fix (404, 403...)."""

    status: int = 0


@dataclass
class ResponseTooLargeError(TransportError):
    """The body is (or is declared) larger than the caller's ``max_bytes`` bound."""

    limit: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transport failures and 5xx answers."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2.0**attempt)


@dataclass(frozen=True)
class FetchResult:
    """A completed download. ``not_modified`` means the validators matched: no body."""

    url: str
    status: int
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


class Fetcher(Protocol):
    """Download a URL's body, whole, within a size bound."""

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult: ...


class DeferredTrustContext(ssl.SSLContext):
    """A client TLS context that loads its trusted CAs just before the first handshake.

    httpx builds a client's TLS context at construction, and parsing the ~150 CA
    certificates takes about 50 ms, even for a client that only ever speaks plain HTTP
    (a loopback registry, an http:// mirror). This context verifies exactly as httpx's
    default does (hostname checked, certificate required; CAs from ``SSL_CERT_FILE``,
    else ``SSL_CERT_DIR``, else certifi's bundle) but reads them when a TLS connection
    is first made.
    """

    _loaded = False
    _lock = threading.Lock()

    def _load_trust(self) -> None:
        with self._lock:
            if self._loaded:
                return
            if cafile := os.environ.get("SSL_CERT_FILE"):
                where, locations = f"SSL_CERT_FILE={cafile}", {"cafile": cafile}
            elif capath := os.environ.get("SSL_CERT_DIR"):
                where, locations = f"SSL_CERT_DIR={capath}", {"capath": capath}
            else:
                import certifi  # noqa: PLC0415 (httpx's own default bundle)

                where, locations = (
                    f"certifi's bundle {certifi.where()}",
                    {"cafile": certifi.where()},
                )
            try:
                self.load_verify_locations(**locations)
            except OSError as exc:  # ssl.SSLError too: a file that is not PEM
                # raised as kiln's error, not an OSError: httpcore would report that as a
                # connection failure and kiln would retry a bad setting as a network fault
                raise EnvironmentProblem(
                    f"cannot load the trusted CA certificates from {where}: {exc}",
                    hint="point SSL_CERT_FILE at a PEM bundle or SSL_CERT_DIR at a "
                    "hashed certificate directory, or unset them",
                ) from exc
            self._loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)


def tls_context() -> DeferredTrustContext:
    """A fresh client TLS context: TLS 1.2 or newer, hostname and chain verified."""
    context = DeferredTrustContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def http_client(*, timeout: float = 30.0, http2: bool = False) -> httpx.Client:
    """The one factory for HTTP clients in kiln (follows redirects, identifies itself)."""
    return httpx.Client(
        verify=tls_context(),
        timeout=httpx.Timeout(timeout, connect=10.0),
        follow_redirects=True,
        headers={"User-Agent": f"kiln/{__version__}"},
        http2=http2,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
    )


class HttpFetcher:
    """A ``Fetcher`` over httpx with retry/backoff on transport errors and 5xx.

    A 404 or other 4xx is reported at once (``TransportError`` with the status), since
    retrying cannot help; the size bound is enforced while streaming.
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client or http_client()
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        last_error: Exception | None = None
        for attempt in range(self._retry.attempts):
            if attempt:
                self._sleep(self._retry.delay(attempt - 1))
            try:
                with self._stream(url, headers) as response:
                    if response.status_code == 304:
                        return FetchResult(url, 304, b"", etag, last_modified, not_modified=True)
                    if response.status_code in RETRY_STATUS:
                        status = response.status_code
                        last_error = TransportError(f"{url}: server answered {status}")
                        continue
                    if response.status_code >= 400:
                        raise HttpStatusError(
                            f"{url}: server answered {response.status_code}",
                            hint="check the mirror URL and that the file exists there",
                            status=response.status_code,
                        )
                    body = _read_bounded(response, url, max_bytes)
                    return FetchResult(
                        url,
                        response.status_code,
                        body,
                        response.headers.get("ETag"),
                        response.headers.get("Last-Modified"),
                    )
            except httpx.TransportError as exc:
                last_error = exc
        raise TransportError(
            f"{url}: could not download after {self._retry.attempts} attempts: {last_error}",
            hint="check the network and the mirror configuration",
        ) from last_error

    @contextmanager
    def _stream(self, url: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        with self._client.stream("GET", url, headers=headers) as response:
            yield response


def _read_bounded(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLargeError(
            f"{url}: {declared} bytes exceeds the limit of {max_bytes}", limit=max_bytes
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise ResponseTooLargeError(
                f"{url}: body exceeds the limit of {max_bytes} bytes", limit=max_bytes
            )
        chunks.append(chunk)
    return b"".join(chunks)
