"""One real published store for the site's tests, built once per session.

``images/static.yaml`` is staged (``fixtures.catalog.staged_spec``), relocked against
today's Debian archive, built, tested and attested by ``kiln site publish``: the
runtime image for amd64 and arm64 (its tests under qemu-user), the -dev image for
amd64. A signed OpenVEX attestation (``kiln vex create`` + ``kiln attest``) marks one
CVE not_affected in the -dev image. The vulnerability database is imported by
``kiln db update --source debian-tracker`` from a tracker document written here in the
tracker's own format: real feed shape, CVE ids from the reserved 2099 range about
packages the images really hold, one description hostile (markup, terminal escapes).
The site then runs in this process (uvicorn in a thread) on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.site.app import create_app
from kiln.site.web import SiteConfig

HOSTILE = '<script>alert("feed")</script>\x1b]0;pwned\x07\x1b[2Jgone'
#: the tracker entries: (source package, CVE, status, fixed version, urgency, description)
TRACKER = [
    ("tzdata", "CVE-2099-0001", "open", None, "medium", "tzdata parses leap seconds badly"),
    ("ca-certificates", "CVE-2099-0002", "resolved", "99:1", "high", "a distrusted root"),
    ("bash", "CVE-2099-0003", "open", None, "low", HOSTILE),
    ("coreutils", "CVE-2099-0004", "resolved", "99:1", "medium", "ls mis-sorts"),
    ("zlib", "CVE-2099-0005", "open", None, "high", "inflate reads past the window"),
]
#: the CVE the -dev image's signed VEX marks not_affected
VEX_CVE = "CVE-2099-0004"


@dataclass(frozen=True)
class Published:
    """The published store and what the tests need to reach it."""

    store: Path
    db: str
    public_key: Path
    private_key: Path
    password_file: Path
    root: Path


def tracker_document() -> dict[str, dict[str, object]]:
    """The debian-tracker JSON (the Security Tracker's export format) for ``TRACKER``."""
    document: dict[str, dict[str, object]] = {}
    for source, cve, status, fixed, urgency, description in TRACKER:
        release: dict[str, object] = {
            "status": status,
            "repositories": {"trixie": "1"},
            "urgency": urgency,
        }
        if fixed:
            release["fixed_version"] = fixed
        document.setdefault(source, {})[cve] = {
            "description": description,
            "scope": "local",
            "releases": {"trixie": release},
        }
    return document


def _run(*args: str) -> None:
    code = main(list(args))
    if code != 0:
        raise RuntimeError(f"kiln {' '.join(args)} exited {code}")


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Build, test, attest and publish static (runtime, -dev) into a store; fill a DB."""
    root = tmp_path_factory.mktemp("site")
    spec = staged_spec("static", root / "spec")
    password = root / "password"
    password.write_text("correct horse\n")
    _run("keygen", "--out", str(root / "kiln"), "--password-file", str(password))
    key = root / "kiln.key"
    store = root / "store"
    common = ["--key", str(key), "--password-file", str(password), "--store", str(store)]
    _run("site", "publish", str(spec), *common, "--variant", "runtime", "--refresh")
    _run("site", "publish", str(spec), *common, "--variant", "dev", "--arch", "amd64")
    vex = root / "vex.json"
    _run("vex", "create", "--vuln", VEX_CVE, "--product", "pkg:deb/debian/coreutils",
         "--status", "not_affected", "--justification", "vulnerable_code_not_in_execute_path",
         "--output", str(vex))  # fmt: skip
    dev = store / "static-dev"
    _run("attest", str(dev), str(vex), "--type", "vex", "--key", str(key),
         "--password-file", str(password), "--output", str(dev / "attestations"),
         "--name", "static-dev")  # fmt: skip
    tracker = root / "tracker.json"
    tracker.write_text(json.dumps(tracker_document()))
    db = str(root / "vuln.db")
    _run("db", "update", "--source", "debian-tracker", "--from", str(tracker), "--db", db)
    return Published(store, db, store / "kiln.pub", key, password, root)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningSite:
    host: str  # 127.0.0.1:PORT

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@contextlib.contextmanager
def serve(config: SiteConfig, *, rate: float = 0.0, burst: int = 1) -> Iterator[RunningSite]:
    """The site on a free loopback port, in a thread of this process."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    app = create_app(
        SiteConfig(config.store, config.db, host, config.forge), rate=rate, burst=burst
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the site did not start")
        time.sleep(0.02)
    try:
        yield RunningSite(host)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def site(published: Published) -> Iterator[RunningSite]:
    """The site over the published store (no rate limit: tests make many requests)."""
    with serve(SiteConfig(published.store, published.db)) as running:
        yield running
