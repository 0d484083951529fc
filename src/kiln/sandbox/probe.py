"""The client side of a service test: connect, send, read until the expected answer.

An image under test usually has no client of its own (no shell, no curl), so kiln
brings one: this module runs with the host's Python, entered into the sandbox's user
and network namespaces with ``nsenter(1)``, so that ``127.0.0.1`` is the sandbox's
private loopback where the service listens. It only uses the standard library and runs
as ``main([PORT, EXPECT, SEND, DEADLINE])`` (see ``kiln.sandbox.bwrap.probe_argv``); it
prints what the service answered and exits 0 when ``EXPECT`` (a regular expression) was
found, 10 when the answer did not match and 11 when nothing accepted a connection before
the deadline.
"""

from __future__ import annotations

import re
import socket
import sys
import time

# Not 1: nsenter and an uncaught Python error exit with 1, and must not read as an answer.
EXIT_MATCHED, EXIT_MISMATCH, EXIT_NO_SERVICE = 0, 10, 11
_RETRY = 0.05
_LIMIT = 1 << 20


def connect(port: int, deadline: float, host: str = "127.0.0.1") -> socket.socket | None:
    """Connect to ``host:port``, retrying while nothing listens yet, until ``deadline``."""
    while True:
        try:
            return socket.create_connection((host, port), timeout=max(0.1, deadline - time.time()))
        except OSError:
            if time.time() >= deadline:
                return None
            time.sleep(_RETRY)


def exchange(sock: socket.socket, send: bytes, expect: str, deadline: float) -> tuple[bool, bytes]:
    """Send ``send``; read until ``expect`` matches, the peer closes, or ``deadline``."""
    pattern = re.compile(expect.encode(), re.MULTILINE)
    if send:
        sock.sendall(send)
    answer = b""
    while not pattern.search(answer) and len(answer) < _LIMIT:
        remaining = deadline - time.time()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except OSError:  # timeout or reset: judge what arrived
            break
        if not chunk:
            break
        answer += chunk
    return bool(pattern.search(answer)), answer


def main(argv: list[str]) -> int:
    port, expect, send, deadline = int(argv[0]), argv[1], argv[2], float(argv[3])
    sock = connect(port, deadline)
    if sock is None:
        print(f"nothing accepted a connection on 127.0.0.1:{port}", file=sys.stderr)
        return EXIT_NO_SERVICE
    with sock:
        matched, answer = exchange(sock, send.encode(), expect, deadline)
    sys.stdout.write(answer.decode("utf-8", "replace"))
    return EXIT_MATCHED if matched else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
