"""What the read-back before the tags costs a publish (issue 13.2).

Run: `.venv/bin/python bench/publish_readback.py [RUNS]`. Builds the tests' fixture
image (signed fixture archive on loopback, no network; runtime variant, amd64 + arm64),
signs its 9 attestations, then publishes it RUNS times (default 5) into fresh
repositories of a local docker-registry, each through a counting proxy (no faults).
Reports the median publish time, the time of ``confirm_image`` + ``confirm_referrers``
(the read-back of image, blobs and referrers that now precedes the tags) and requests.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# tests/ holds the fixtures
import kiln.pipeline.publish as publishing  # noqa: E402
from fixtures.debrepo import (  # noqa: E402
    RepoServer,
    build_repository,
    default_mirror_dir,
    generate_key,
    standard_packages,
    stop_agent,
)
from fixtures.registry import FaultProxy, start_registry  # noqa: E402
from hostile.test_publish_faults import CTRF, SPEC  # noqa: E402
from kiln.attest import EcdsaSigner, KeyBundleSigner  # noqa: E402
from kiln.registry import Anonymous, RegistryClient  # noqa: E402


def _observed(work: Path) -> publishing.BuildObservation:
    from kiln.pipeline import ArchiveAccess
    from kiln.pipeline.build import BuildOptions, build_spec
    from kiln.spec import load_spec

    spec = work / "demo.yaml"
    spec.write_text(SPEC)
    (built,) = build_spec(
        load_spec(spec),
        ArchiveAccess.from_environment(),
        BuildOptions(output=work / "out", variants=("runtime",)),
    )
    now = dt.datetime.now(dt.UTC)
    return publishing.BuildObservation(
        loaded=built.loaded,
        lock=built.lock,
        variant=built.variant,
        built=built.image,
        started_on=now,
        finished_on=now,
        test_reports={image.arch: CTRF for image in built.image.images},
        options={},
    )


class ReadBack:
    """Wraps the read-back steps: seconds and proxied requests spent in them, per run."""

    def __init__(self) -> None:
        self.proxy: FaultProxy | None = None
        self.seconds = 0.0
        self.requests = 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start, sent = time.perf_counter(), len(self.proxy.log) if self.proxy else 0
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.requests += (len(self.proxy.log) if self.proxy else 0) - sent

        return run


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        work = Path(tmp)
        key = generate_key(work / "gpg")
        build_repository(work / "repo", standard_packages(), key=key, valid_until=None)
        with RepoServer(work / "repo") as server, start_registry(work / "registry") as registry:
            config = work / "config.yaml"
            config.write_text(
                "mirrors:\n"
                f"  debian: {server.url}/{default_mirror_dir('trixie')}\n"
                f"  debian-security: {server.url}/{default_mirror_dir('trixie-security')}\n"
            )
            for name, value in {
                "KILN_CONFIG": str(config),
                "KILN_KEYRING": str(key.keyring),
                "KILN_CACHE": str(work / "cache"),
                "SOURCE_DATE_EPOCH": "1767225600",
            }.items():
                patch.setenv(name, value)
            seen = _observed(work)
            attestations = publishing.attestations_for(
                seen, KeyBundleSigner(EcdsaSigner.generate())
            )
            watch = ReadBack()
            for step in ("confirm_image", "confirm_referrers"):
                patch.setattr(publishing, step, watch.wrap(getattr(publishing, step)))
            totals, requests, readback, readback_requests = [], [], [], []
            for run in range(runs):
                with (
                    FaultProxy(registry.host) as proxy,
                    RegistryClient.for_host(proxy.host, credentials=Anonymous()) as client,
                ):
                    watch.proxy, watch.seconds, watch.requests = proxy, 0.0, 0
                    destination = publishing.Destination(proxy.host, f"bench{run}")
                    start = time.perf_counter()
                    publishing.publish(seen, attestations, client=client, destination=destination)
                    totals.append(time.perf_counter() - start)
                    requests.append(len(proxy.log))
                    readback.append(watch.seconds)
                    readback_requests.append(watch.requests)
        stop_agent(key)
    table = Table(title=f"publish of the fixture image ({len(attestations)} attestations)")
    for column in ("", "median", "runs", "requests"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "publish (push, attach, read back, tag)",
        f"{statistics.median(totals):.3f}s",
        " ".join(f"{t:.2f}" for t in totals),
        str(statistics.median(requests)),
    )
    table.add_row(
        "of which the read-back",
        f"{statistics.median(readback):.3f}s",
        " ".join(f"{t:.2f}" for t in readback),
        str(statistics.median(readback_requests)),
    )
    Console().print(table)


if __name__ == "__main__":
    main()
