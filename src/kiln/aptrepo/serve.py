"""Serve a kiln apt repository read-only over HTTP, for apt and ``KILN_REPO=http://...``.

What ``kiln repo publish`` writes is a static tree (https://wiki.debian.org/DebianRepository/Format);
this serves it with the standard library's ``ThreadingHTTPServer``: GET and HEAD only
(RFC 9110 §9.3.1-2), each response with ``Content-Length`` and ``Last-Modified``, and a
``304`` for a matching ``If-Modified-Since``. Only regular files inside the directory are
served: a request whose path, once percent-decoded, has a ``..`` or hidden segment, names
a directory (no listings), or resolves through a symlink to a place outside the tree is
refused. The signatures make the content trustworthy, not the transport: clients verify
``InRelease`` against the exported keyring (``KILN_REPO_KEYRING``, apt's ``signed-by``).

Limits, so that slow or hostile clients cannot hold the server: a request line and its
headers must arrive within ``HEADER_TIMEOUT`` seconds in all (a client trickling one
byte at a time is cut off too; the same bound is the keep-alive idle time); a response
write that makes no progress for ``WRITE_TIMEOUT`` seconds ends the connection; request
bodies are never read (only GET and HEAD are served) and the connection is closed after
refusing a method that may carry one; at most ``MAX_CONNECTIONS`` connections are
served at once, beyond that a client gets ``503`` with ``Retry-After`` at once; the
listen backlog (``LISTEN_BACKLOG``) absorbs bursts of new connections without SYN
retransmits (the documented load: 32 concurrent clients, p99 measured by
tests/hostile/test_serve_load.py).
"""

from __future__ import annotations

import io
import ipaddress
import os
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from kiln.aptrepo.publish import KEYRING_NAME
from kiln.errors import InputError

_CONTENT_TYPES = {
    ".deb": "application/vnd.debian.binary-package",
    ".udeb": "application/vnd.debian.binary-package",
    ".dsc": "text/plain; charset=utf-8",
    ".xz": "application/x-xz",
    ".gz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".zst": "application/zstd",
    ".gpg": "application/pgp-keys",
    ".json": "application/json",
}
_TEXT_NAMES = frozenset({"InRelease", "Release", "Packages", "Sources"})

HEADER_TIMEOUT = 10.0  # seconds for a whole request line + headers (and keep-alive idle)
WRITE_TIMEOUT = 60.0  # seconds a response write may make no progress
MAX_CONNECTIONS = 128  # connections served at once
LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn (4096 on current Linux)


@dataclass(frozen=True)
class ServeLimits:
    """How long and how many: see the module docstring."""

    header_timeout: float = HEADER_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


DEFAULT_LIMITS = ServeLimits()


@dataclass(frozen=True)
class ServedRepository:
    """A kiln repository directory checked to be one: its resolved root and signed suites."""

    root: Path
    suites: tuple[str, ...]

    @property
    def keyring(self) -> Path | None:
        path = self.root / KEYRING_NAME
        return path if path.is_file() else None


def check_repository(directory: Path) -> ServedRepository:
    """``directory`` as a repository to serve; it must hold ``dists/<suite>/InRelease``."""
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory")
    root = directory.resolve()
    dists = root / "dists"
    suites = tuple(
        sorted(d.name for d in dists.iterdir() if (d / "InRelease").is_file())
        if dists.is_dir()
        else ()
    )
    if not suites:
        raise InputError(
            f"{directory} is not a kiln apt repository: no dists/<suite>/InRelease in it",
            hint="create one with: kiln repo publish DIR PACKAGE.deb ...",
        )
    return ServedRepository(root, suites)


class Refused(Exception):  # noqa: N818 - a result, not an error condition of kiln
    """The request path names nothing this server serves (the status to answer with)."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def resolve_request(root: Path, target: str) -> Path:
    """The regular file under ``root`` that request-target ``target`` names, or ``Refused``.

    ``root`` must be resolved. The path is percent-decoded once (so ``%2e%2e`` is ``..``)
    and must be absolute; ``..``, ``.``, empty and hidden (``.name``) segments are refused,
    and the symlink-resolved file must stay inside ``root``.
    """
    # Origin-form only (RFC 9112 §3.2.1); not urlsplit, which reads "//x/y" as a host x.
    raw = target.split("?", 1)[0].split("#", 1)[0]
    if not raw.startswith("/"):
        raise Refused(HTTPStatus.BAD_REQUEST, "the request target is not an absolute path")
    path = unquote(raw, errors="strict")
    if "\x00" in path or "\\" in path:
        raise Refused(HTTPStatus.BAD_REQUEST, "the path holds a NUL or a backslash")
    segments = path.split("/")[1:]
    if segments == [""]:
        raise Refused(HTTPStatus.NOT_FOUND, "directory listings are not served")
    if any(s in ("", ".", "..") or s.startswith(".") for s in segments):
        raise Refused(HTTPStatus.FORBIDDEN, "dot, hidden or empty path segments are refused")
    candidate = root.joinpath(*segments)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, or a symlink loop
        raise Refused(HTTPStatus.NOT_FOUND, "no such file") from exc
    if not real.is_relative_to(root):
        raise Refused(HTTPStatus.FORBIDDEN, "the path leaves the repository")
    if real.is_dir():
        raise Refused(HTTPStatus.NOT_FOUND, "directory listings are not served")
    if not real.is_file():
        raise Refused(HTTPStatus.NOT_FOUND, "not a regular file")
    return real


def content_type(path: Path) -> str:
    if path.name in _TEXT_NAMES:
        return "text/plain; charset=utf-8"
    return _CONTENT_TYPES.get(path.suffix, "application/octet-stream")


class _DeadlineSocketReader(io.RawIOBase):
    """Reads a socket under one deadline for many reads: trickling bytes do not extend it."""

    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self._connection = connection
        self.deadline = time.monotonic() + HEADER_TIMEOUT

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._connection.settimeout(remaining)
        return self._connection.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: RepositoryHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: apt fetches many files per connection

    def version_string(self) -> str:
        return "kiln-serve"  # no Python version in the Server header

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader under the header deadline
        self._reader = _DeadlineSocketReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        # each request (and the idle time before it) gets HEADER_TIMEOUT in all
        self._reader.deadline = time.monotonic() + self.server.limits.header_timeout
        super().handle_one_request()

    def end_headers(self) -> None:
        # the request has been read: from here on only writes may block
        self.connection.settimeout(self.server.limits.write_timeout)
        super().end_headers()

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse_method(self) -> None:
        self.close_connection = True  # its body, if any, is never read
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def _serve(self, *, body: bool) -> None:
        try:
            path = resolve_request(self.server.repository.root, self.path)
        except Refused as refused:
            self._error(refused.status, refused.reason, body=body)
            return
        except UnicodeDecodeError:
            self._error(HTTPStatus.BAD_REQUEST, "the path is not UTF-8", body=body)
            return
        try:
            handle = path.open("rb")
        except OSError:
            self._error(HTTPStatus.NOT_FOUND, "no such file", body=body)
            return
        with handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                self._error(HTTPStatus.NOT_FOUND, "not a regular file", body=body)
                return
            modified = int(info.st_mtime)
            if self._not_modified_since(modified):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("Last-Modified", formatdate(modified, usegmt=True))
                self.end_headers()
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(info.st_size))
            self.send_header("Last-Modified", formatdate(modified, usegmt=True))
            self.end_headers()
            if body:
                shutil.copyfileobj(handle, self.wfile, length=1 << 20)

    def _not_modified_since(self, modified: int) -> bool:
        since = self.headers.get("If-Modified-Since")
        if not since:
            return False
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False  # an unparseable date is ignored (RFC 9110 §13.1.3)
        return when.tzinfo is not None and modified <= int(when.timestamp())

    def _error(self, status: HTTPStatus, reason: str, *, body: bool) -> None:
        content = f"{int(status)} {status.phrase}: {reason}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:
        self.server.log(f"{self.address_string()} {format % args}")


class RepositoryHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server over one ``ServedRepository``, with the limits above."""

    daemon_threads = True
    # Stopping (Ctrl-C) does not wait for open client connections: a keep-alive client
    # could hold its handler thread up to the idle timeout, and a read-only repository
    # loses nothing when a download is cut (apt retries it).
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        repository: ServedRepository,
        address: tuple[str, int],
        *,
        log: Callable[[str], None] | None = None,
        limits: ServeLimits = DEFAULT_LIMITS,
    ) -> None:
        self.repository = repository
        self.log = log or (lambda _line: None)
        self.address_family = _family(address[0])
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            self._busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _busy(self, request: socket.socket) -> None:
        """Over ``max_connections``: answer 503 without a thread, and close."""
        content = b"503 Service Unavailable: too many connections, retry shortly\n"
        try:
            request.settimeout(1.0)
            request.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: " + str(len(content)).encode() + b"\r\n\r\n" + content
            )
        except OSError:
            pass  # the client is gone or not reading: nothing more to do for it
        finally:
            self.shutdown_request(request)
        self.log(f"refused a connection: {self.limits.max_connections} already open")

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        name = host.decode() if isinstance(host, bytes) else host
        shown = f"[{name}]" if self.address_family == socket.AF_INET6 else name
        return f"http://{shown}:{port}"


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET  # a host name: IPv4, as http.server does


@contextmanager
def serving(
    repository: ServedRepository,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Callable[[str], None] | None = None,
    limits: ServeLimits = DEFAULT_LIMITS,
) -> Iterator[RepositoryHTTPServer]:
    """Serve ``repository`` on a background thread for the ``with`` block (port 0: a free one)."""
    server = bind(repository, host, port, log=log, limits=limits)
    thread = threading.Thread(target=server.serve_forever, name="kiln-serve", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def bind(
    repository: ServedRepository,
    host: str,
    port: int,
    *,
    log: Callable[[str], None] | None = None,
    limits: ServeLimits = DEFAULT_LIMITS,
) -> RepositoryHTTPServer:
    """Bind the server (not yet serving); a clear error when the address is unusable."""
    if not 0 <= port <= 65535:
        raise InputError(f"port {port} is not in 0-65535")
    try:
        return RepositoryHTTPServer(repository, (host, port), log=log, limits=limits)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0 picks a free one) or --host",
        ) from exc
