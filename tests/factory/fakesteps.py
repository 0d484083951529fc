"""Small, fast steps injected through the factory's ``Steps`` interface.

The real steps (``kiln.factory.catalog``) lock, build and test for minutes; the engine
tests (dedup, kill -9, dead letters) need steps whose timing and failures they control.
These read the "world" from a JSON file the test rewrites (each image's generation and
what its bump does) and log every call to files, so a test can count what happened,
also across worker processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import InputError, PolicyError, TransportError
from kiln.factory.activities import Beat
from kiln.factory.catalog import EventSink
from kiln.factory.model import (
    Observation,
    Proposal,
    PrResult,
    ReconcileRequest,
    StepResult,
)
from kiln.forge.evidence import CheckResult, CveRow


def append(path: Path, line: str) -> None:
    """One line appended and flushed to disk (the writer may be killed right after)."""
    with path.open("a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def catalog_repo(path: Path, files: Mapping[str, bytes]) -> Path:
    """A catalog git repository at ``path`` on branch main: ``files`` (path -> bytes)
    committed once, as the factory's checkout."""
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return path


def lines(path: Path) -> list[str]:
    """The lines of a log file (none when it does not exist yet)."""
    return path.read_text().splitlines() if path.exists() else []


@dataclass
class FakeSteps:
    """Steps driven by ``world.json`` in ``directory`` and logging into it.

    world.json: {image: {"generation": str, "behind": bool, "build_seconds": float,
    "bump": "ok" | "test-fails" | "flaky" | "transport", "pr": "ok" | "500"}}
    """

    directory: Path
    sink: EventSink | None = None  # the real advisory store, when a test wants it

    def _world(self, image: str) -> dict[str, object]:
        world = json.loads((self.directory / "world.json").read_text())
        entry = world.get(image)
        if entry is None:
            raise InputError(f"images/{image}.yaml: no such image in the catalog")
        if not isinstance(entry, dict):
            raise InputError(f"world.json: {image}: malformed feed data {entry!r}")
        return entry

    def observe(self, request: ReconcileRequest) -> Observation:
        entry = self._world(request.image)
        append(self.directory / "observe.log", f"{request.image} {entry['generation']}")
        return Observation(
            image=request.image,
            generation=str(entry["generation"]),
            behind=bool(entry.get("behind", True)),
            drift="1 package behind",
            open_cves=["CVE-2026-0001"],
            unstable_cves=["libx CVE-2026-0002"] if entry.get("unstable") else [],
        )

    def bump(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        entry = self._world(request.image)
        log = self.directory / "builds.log"
        append(log, f"start {request.image} {seen.generation} pid={os.getpid()}")
        deadline = time.monotonic() + float(str(entry.get("build_seconds", 0)))
        while time.monotonic() < deadline:
            beat("building")
            time.sleep(0.1)
        mode = entry.get("bump", "ok")
        if mode == "test-fails":
            raise PolicyError(f"{request.image}: the image's tests fail after the bump")
        if mode == "transport":
            raise TransportError("deb.example: 503 Service Unavailable")
        if mode == "flaky" and len([x for x in lines(log) if x.startswith("start")]) < 2:
            raise TransportError("connection reset while fetching a .deb")
        append(log, f"done {request.image} {seen.generation}")
        proposal = Proposal(
            image=request.image,
            kind="bump",
            generation=seen.generation,
            title=f"{request.image}: bump",
            files=Proposal.encode({f"images/{request.image}.lock.json": b"{}\n"}),
            cves_before=[CveRow("CVE-2026-0001", "libx", "1.0", "high")],
            tests=[CheckResult("build", "pass")],
        )
        return StepResult("bump", "proposed", "", proposal)

    def vex(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        return StepResult("vex", "nothing")

    def backport(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        return StepResult("backport", "nothing")

    def research(
        self, request: ReconcileRequest, seen: Observation, vex: Proposal | None, beat: Beat
    ) -> StepResult:
        return StepResult("research", "nothing", "no upstream research in the fake steps")

    def open_pr(self, proposal: Proposal, dry_run: bool) -> PrResult:
        entry = self._world(proposal.image)
        append(self.directory / "pr-calls.log", f"{proposal.image} {proposal.generation}")
        if entry.get("pr") == "500":
            raise TransportError("forge answered 500 Internal Server Error")
        return PrResult(f"{proposal.image}-{proposal.generation}", "", "kiln/bump/x", True, dry_run)

    def record(self, image: str, vuln_id: str, kind: str, data: dict[str, str]) -> None:
        append(self.directory / "events.log", json.dumps([image, vuln_id, kind, data]))
        if self.sink is not None:
            self.sink(image, vuln_id, kind, data)
