"""The build context's nginx configs: does a final stage need to bind a port below 1024?

kiln's runtime images run as nonroot (65532), so nginx there cannot bind port 80 (the
kernel reserves ports below ``ip_unprivileged_port_start``, 1024 under podman). A
Dockerfile written for the official nginx image that COPYs a server config with
``listen 80;`` into ``/etc/nginx`` therefore needs ``-dev``, which runs as root with the
official layout. ``listen`` follows nginx's ngx_http_core_module: ``listen address[:port]``,
``listen port``, ``listen unix:path``; without a port nginx listens on 80.

``privileged_listens`` is pure; ``DirectoryContext`` is the I/O edge that reads a COPY's
sources from a build context directory (never outside it, bounded in size).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: The lowest port a non-root process may bind (Linux's default ip_unprivileged_port_start).
UNPRIVILEGED_PORT_START = 1024
NGINX_CONFIG_DIR = "/etc/nginx"
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_FILES = 1000

_LISTEN = re.compile(r"(?:^|[;{}\s])listen\s+([^;\s]+)")


@dataclass(frozen=True)
class PrivilegedListen:
    """A ``listen`` directive on a port below 1024: where it is and the port."""

    file: str  # as the build context names it
    line: int
    port: int


class BuildContext(Protocol):
    """The files a COPY/ADD source names in the build context."""

    def files(self, source: str) -> Iterator[tuple[str, bytes]]: ...


def _port(address: str) -> int | None:
    if address.startswith("unix:"):
        return None
    if address.isdigit():
        return int(address)
    host, colon, port = address.rpartition(":")
    if colon and port.isdigit() and not host.endswith(":"):  # not a bare IPv6 address
        return int(port)
    if colon and not host and not port:
        return None
    return 80  # an address without a port: nginx listens on 80


def privileged_listens(name: str, text: str) -> list[PrivilegedListen]:
    """Every ``listen`` in nginx config ``text`` whose port is below 1024 (comments skipped)."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        for match in _LISTEN.finditer(line):
            port = _port(match.group(1))
            if port is not None and port < UNPRIVILEGED_PORT_START:
                found.append(PrivilegedListen(name, number, port))
    return found


def copies_into_nginx(destination: str, workdir: str = "/") -> bool:
    """Whether a COPY destination lies under /etc/nginx."""
    path = destination if destination.startswith("/") else f"{workdir.rstrip('/')}/{destination}"
    return path == NGINX_CONFIG_DIR or path.startswith(NGINX_CONFIG_DIR + "/")


@dataclass(frozen=True)
class DirectoryContext:
    """A build context on disk: COPY sources resolve inside ``root`` and nowhere else."""

    root: Path

    def files(self, source: str) -> Iterator[tuple[str, bytes]]:
        root = self.root.resolve()
        pattern = source.lstrip("/") or "."
        if any(part == ".." for part in pattern.split("/")):
            return  # BuildKit keeps sources inside the context; such a COPY fails there
        try:
            matches = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else []
        except (ValueError, OSError):
            return
        if not matches:
            matches = [root / pattern]
        seen = 0
        for match in matches:
            for path in [match] if not match.is_dir() else sorted(match.rglob("*")):
                try:
                    real = path.resolve()
                    if not real.is_relative_to(root) or not real.is_file():
                        continue
                    if real.stat().st_size > MAX_CONFIG_BYTES:
                        continue
                    data = real.read_bytes()
                except OSError:
                    continue
                seen += 1
                if seen > MAX_CONFIG_FILES:
                    return
                yield str(path.relative_to(root)), data
