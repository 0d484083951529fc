"""Where the factory's Temporal is: ``$KILN_TEMPORAL``, or a local dev server kiln runs.

With ``KILN_TEMPORAL=host:port`` kiln talks to that cluster (production: a
PostgreSQL-backed Temporal, docs/factory.md). Unset, kiln starts the pinned Temporal
CLI's dev server (``.venv/bin/temporal server start-dev``, tools/requirements.txt) with
its SQLite state under the catalog checkout's ``.kiln/temporal/``, detached so it
outlives the command, and reuses it on the next run (``server.json`` records its pid
and ports). The dev server starts offline in about a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import EnvironmentProblem, InputError
from kiln.fileio import atomic_write
from kiln.jsonlimits import read_json_file

ENV_ADDRESS = "KILN_TEMPORAL"
ENV_BINARY = "KILN_TEMPORAL_CLI"
NAMESPACE = "default"
STATE_DIR = ".kiln"


@dataclass(frozen=True)
class Endpoint:
    """A Temporal frontend to connect to, and its web UI when kiln knows it."""

    address: str  # host:port
    ui: str | None = None
    pid: int | None = None  # the dev server kiln started (None: an external cluster)


def state_dir(root: Path) -> Path:
    """The checkout's ``.kiln/`` (created, and ignored by git through its own .gitignore)."""
    directory = root / STATE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        atomic_write(ignore, b"*\n")
    return directory


def parse_address(text: str, *, source: str = ENV_ADDRESS) -> str:
    """``host:port`` validated (an input error naming ``source`` otherwise)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{source}={text!r}: expected host:port, e.g. temporal.internal:7233")
    return f"{host}:{port}"


def temporal_binary(environ: Mapping[str, str] = os.environ) -> Path:
    """The pinned Temporal CLI: ``$KILN_TEMPORAL_CLI``, else ``temporal`` beside this Python."""
    configured = environ.get(ENV_BINARY)
    candidates = [Path(configured)] if configured else [Path(sys.executable).parent / "temporal"]
    if not configured and (found := shutil.which("temporal")):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EnvironmentProblem(
        f"the Temporal CLI is not installed (looked for {', '.join(map(str, candidates))})",
        hint="run `make venv` (it installs tools/requirements.txt, hash-pinned), "
        f"or set {ENV_ADDRESS}=host:port to use a running Temporal",
    )


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded(path: Path) -> Endpoint | None:
    """The dev server ``server.json`` describes, if it still runs; None otherwise."""
    if not path.is_file():
        return None
    try:
        data = read_json_file(path, max_bytes=4096, what="the dev server record")
    except InputError:
        return None  # unreadable or garbage: start a new server and rewrite it
    if not isinstance(data, dict):
        return None
    pid, address, ui = data.get("pid"), data.get("address"), data.get("ui")
    if not isinstance(pid, int) or not isinstance(address, str):
        return None
    if not _alive(pid) or not _listening(address):
        return None
    return Endpoint(address, ui if isinstance(ui, str) else None, pid)


def start_dev_server(
    directory: Path,
    *,
    port: int | None = None,
    ui: bool = True,
    binary: Path | None = None,
    timeout: float = 30.0,
) -> Endpoint:
    """Start ``temporal server start-dev`` on loopback with its database in ``directory``.

    The server runs in its own session (it outlives the caller); its output goes to
    ``directory/server.log``. Returns when the frontend accepts connections.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    ui_port = free_port() if ui else None
    argv = [
        str(binary or temporal_binary()),
        "server",
        "start-dev",
        "--db-filename",
        str(directory / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    log = (directory / "server.log").open("ab")
    try:
        process = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    finally:
        log.close()
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not _listening(address):
        if process.poll() is not None:
            raise EnvironmentProblem(
                f"the Temporal dev server exited with status {process.returncode}",
                hint=f"see {directory / 'server.log'}",
            )
        if time.monotonic() > deadline:
            stop_server(process.pid)
            raise EnvironmentProblem(
                f"the Temporal dev server did not listen on {address} within {timeout:.0f}s",
                hint=f"see {directory / 'server.log'}",
            )
        time.sleep(0.1)
    return Endpoint(address, f"http://127.0.0.1:{ui_port}" if ui_port else None, process.pid)


def stop_server(pid: int, *, timeout: float = 10.0) -> None:
    """Stop a dev server kiln started (SIGTERM, then SIGKILL after ``timeout``)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def endpoint_for(root: Path, environ: Mapping[str, str] = os.environ) -> Endpoint:
    """``$KILN_TEMPORAL``, else the local dev server of ``root`` (started when not running)."""
    configured = environ.get(ENV_ADDRESS, "").strip()
    if configured:
        return Endpoint(parse_address(configured))
    directory = state_dir(root) / "temporal"
    record = directory / "server.json"
    found = _recorded(record)
    if found is not None:
        return found
    started = start_dev_server(directory)
    atomic_write(
        record,
        json.dumps({"pid": started.pid, "address": started.address, "ui": started.ui}).encode(),
    )
    return started
