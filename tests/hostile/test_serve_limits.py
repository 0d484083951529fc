"""kiln serve against slow and greedy clients: half-sent requests, trickles, floods.

Issue 13.9: a connection that sent part of a request line stayed open for good, and the
listen backlog of 5 made new connections wait for SYN retransmits. The server here is
the real one on loopback, over a minimal repository directory; no assertion is timed:
each test's client waits up to 30 s, far beyond the server's limits, for what it expects.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.aptrepo import check_repository, serving
from kiln.aptrepo.serve import LISTEN_BACKLOG, RepositoryHTTPServer, ServeLimits

CLIENT_PATIENCE = 30.0  # seconds; the server's limits in these tests are under 2 s


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    (tmp_path / "dists/kiln").mkdir(parents=True)
    (tmp_path / "dists/kiln/InRelease").write_bytes(b"signed index\n")
    return tmp_path


@pytest.fixture
def server(repository: Path) -> Iterator[RepositoryHTTPServer]:
    limits = ServeLimits(header_timeout=1.0, max_connections=3)
    with serving(check_repository(repository), limits=limits) as running:
        yield running


def _connect(server: RepositoryHTTPServer) -> socket.socket:
    host, port = server.server_address[0], server.server_address[1]
    return socket.create_connection((str(host), port), timeout=CLIENT_PATIENCE)


def _read_all(connection: socket.socket) -> bytes:
    """Everything until the server closes (raises TimeoutError if it never does)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_a_half_sent_request_line_is_closed(server: RepositoryHTTPServer) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /dists/kiln/InRe")
        assert _read_all(connection) == b""  # closed by the server, nothing answered


def test_headers_trickled_byte_by_byte_are_cut_off(server: RepositoryHTTPServer) -> None:
    # each byte arrives well inside any per-read timeout; the whole request never does
    request = b"GET /dists/kiln/InRelease HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 50
    with _connect(server) as connection:
        assert _trickle(connection, request) < len(request)


def _trickle(connection: socket.socket, request: bytes) -> int:
    """How many bytes went out, one at a time, before the server closed the connection."""
    for sent, byte in enumerate(request):
        try:
            connection.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return sent
        time.sleep(0.05)
    return len(request)


def test_an_idle_keep_alive_connection_is_closed(server: RepositoryHTTPServer) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /dists/kiln/InRelease HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(connection)  # served, then closed after the idle limit
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nsigned index\n")


def test_connections_beyond_the_limit_get_503_at_once(server: RepositoryHTTPServer) -> None:
    held = [_connect(server) for _ in range(3)]  # idle: each holds a slot
    try:
        for connection in held:  # every one of them has been accepted and holds its slot
            connection.sendall(b"HEAD /dists/kiln/InRelease HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        with _connect(server) as extra:
            answer = _read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n")
    finally:
        for connection in held:
            connection.close()
    # the slots come back once the server has seen the clients leave
    assert any(_head(server).startswith(b"HTTP/1.1 200 OK\r\n") for _ in _polls())


def _head(server: RepositoryHTTPServer) -> bytes:
    with _connect(server) as connection:
        connection.sendall(
            b"HEAD /dists/kiln/InRelease HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        return _read_all(connection)


def _polls() -> Iterator[int]:
    for attempt in range(200):
        yield attempt
        time.sleep(0.05)


def test_a_refused_method_with_a_body_closes_the_connection(
    server: RepositoryHTTPServer,
) -> None:
    with _connect(server) as connection:
        connection.sendall(
            b"POST /dists/kiln/InRelease HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        )
        answer = _read_all(connection)
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"Connection: close\r\n" in answer


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_listen_backlog_is_sized_for_bursts(server: RepositoryHTTPServer) -> None:
    port = server.server_address[1]
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    with open("/proc/sys/net/core/somaxconn") as handle:
        cap = int(handle.read())
    assert int(listing[2]) == min(LISTEN_BACKLOG, cap)  # Send-Q of a listener: its backlog
