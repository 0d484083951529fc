"""Remedy (c), VEX with evidence, through the real engine: a real Temporal dev server, the
real local git forge in a temporary catalog repository, kiln's real advisory store.

The steps are ``FakeSteps`` with a ``vex`` step that decides with the real rules
(``kiln.pipeline.vexevidence.decide_component``) on trixie's tiff file lists (abridged;
tests/pipeline/test_vexevidence_network.py reads them from the real .debs) and builds
its pull request with the factory's own ``vex_proposal``; the catalog's real vex step
(``CatalogSteps.vex``) needs an unstable fix that touches only a missing program, and
today's archive has none for the catalog (docs/factory.md).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.factory.activities import Beat, FactoryActivities
from kiln.factory.catalog import vex_proposal
from kiln.factory.engine import connect, enqueue, make_worker
from kiln.factory.model import (
    Observation,
    Proposal,
    PrResult,
    ReconcileRequest,
    ReconcileResult,
    StepPolicy,
    StepResult,
)
from kiln.factory.prs import open_change
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.wiring import advisory_sink
from kiln.forge import LocalGitForge
from kiln.forge.evidence import CveRow
from kiln.pipeline.vexevidence import decide_component
from kiln.vuln.advisories import AdvisoryStore, openvex_for_image

from .fakesteps import FakeSteps, append, catalog_repo, lines

FAST = StepPolicy(max_attempts=2, initial_backoff_s=0.2, max_backoff_s=1, heartbeat_s=5)
LIBTIFF6 = ["usr/lib/x86_64-linux-gnu/libtiff.so.6", "usr/lib/x86_64-linux-gnu/libtiff.so.6.1.0"]
TIFF = {
    "libtiff6": LIBTIFF6,
    "libtiff-tools": ["usr/bin/tiffcp", "usr/bin/tiffcrop", "usr/bin/tiffinfo"],
}
# what unstable's patch changes for each CVE (hand-written against tiff's real file names)
FIXES = {"CVE-2026-0001": "tools/tiffcrop.c", "CVE-2026-0002": "libtiff/tif_read.c"}


def _diff(path: str) -> bytes:
    return f"--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,3 @@\n x\n-y\n+z\n+w\n".encode()


@dataclass
class VexSteps(FakeSteps):
    """FakeSteps whose observation names two tiff CVEs only unstable fixes, whose vex
    step decides with the real rules, and whose PRs go to the real local forge."""

    forge: LocalGitForge | None = None

    def observe(self, request: ReconcileRequest) -> Observation:
        append(self.directory / "observe.log", request.image)
        return Observation(
            image=request.image,
            generation="g1",
            behind=False,
            unstable_cves=[f"tiff {cve}" for cve in sorted(FIXES)],
        )

    def vex(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        append(self.directory / "vex.log", f"{request.image} {seen.unstable_cves}")
        verdicts = [
            decide_component(
                image=request.image,
                source="tiff",
                cve=cve,
                fix_origin=f"Debian sid: {cve}.patch",
                diffs=[(f"{cve}.patch", _diff(FIXES[cve]))],
                source_files=TIFF,
                installed={"libtiff6": LIBTIFF6},
                image_files=["usr/bin/env", *LIBTIFF6],
                strings={},
            )
            for cve in (e.split()[-1] for e in seen.unstable_cves)
        ]
        held = [v for v in verdicts if v.statement]
        leads = [f"{v.cve}: {v.reason}" for v in verdicts if not v.statement]
        proposal = vex_proposal(
            request.image, seen.generation, labels=["base", "base-dev"], held=held, leads=leads,
            before=[CveRow(v.cve, "libtiff6", "4.7.0-3", "high") for v in held],
            timestamp="2026-12-07T11:00:00Z",
        )  # fmt: skip
        return StepResult("vex", "proposed", held[0].reason, proposal)

    def backport(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        append(self.directory / "backport.log", f"{request.image} {seen.unstable_cves}")
        return StepResult("backport", "nothing", "the patch does not apply")

    def open_pr(self, proposal: Proposal, dry_run: bool) -> PrResult:
        append(self.directory / "pr-calls.log", f"{proposal.kind} {proposal.generation}")
        assert self.forge is not None
        return open_change(self.forge, self.forge.repo, proposal, dry_run=dry_run)


def test_a_vex_only_case_opens_one_vex_pr_records_the_determination_and_not_twice(
    temporal: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    repo = catalog_repo(tmp_path / "catalog", {"images/base.yaml": b"name: base\n"})
    db = f"sqlite:///{tmp_path / 'kiln.db'}"
    forge = LocalGitForge(repo)
    steps = VexSteps(tmp_path, advisory_sink(db), forge=forge)

    async def passes() -> list[ReconcileResult]:
        client = await connect(temporal)
        activities = FactoryActivities(steps, FactoryState(tmp_path))
        worker, executor = make_worker(client, activities, max_concurrent=2)
        results: list[ReconcileResult] = []
        try:
            async with worker:
                for force in (False, False, True):  # again; then the same generation forced
                    handle = await enqueue(client, "base", reason="test", policy=FAST, force=force)
                    results.append(await handle.result())
        finally:
            executor.shutdown(wait=True)
        return results

    first, second, forced = asyncio.run(passes())
    assert first.outcome == "pr-opened", first
    assert first.steps[0].startswith("vex: proposed (every code file the fix changes is a ")
    # the CVE the statement covers left the plan; the other went on to the backport
    assert first.steps[1] == "backport: nothing (the patch does not apply)"
    # (first and forced pass)
    assert lines(tmp_path / "backport.log") == ["base ['tiff CVE-2026-0002']"] * 2
    assert second.outcome == "skipped"  # the generation is settled
    assert forced.outcome == "pr-exists"  # the forge updates, never opens a second
    assert len(lines(tmp_path / "vex.log")) == 2  # first and forced, not the settled one
    (pr,) = forge.list()
    assert (pr.kind, pr.branch, pr.state) == ("vex", "kiln/vex/base", "open")
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", "kiln/vex/base:vex/base.openvex.json"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    document = json.loads(shown)
    (statement,) = document["statements"]
    assert statement["vulnerability"]["name"] == "CVE-2026-0001"
    assert statement["justification"] == "component_not_present"
    assert "tools/tiffcrop.c -> /usr/bin/tiffcrop" in statement["impact_statement"]
    body = forge.body(pr.id).replace("\\", "")  # Markdown escapes taken out
    assert "tools/tiffcrop.c -> /usr/bin/tiffcrop" in body
    assert "no statement: CVE-2026-0002: libtiff/tif_read.c" in body
    with AdvisoryStore.open(db) as store:
        for label in ("base", "base-dev"):
            state = {s.vuln_id: s for s in store.state(label)}
            assert state["CVE-2026-0001"].status == "not_affected"
            assert state["CVE-2026-0001"].package == "libtiff6"
            made = state["CVE-2026-0001"].determination
            assert made is not None
            assert made.data["justification"] == "component_not_present"
            assert "usr/bin/tiffcrop" in made.data["evidence"]
        base = {s.vuln_id: s for s in store.state("base")}
        assert base["CVE-2026-0002"].resolution == "pending-upstream-fix"
        kinds = [e.kind.value for e in store.history("base", "CVE-2026-0001")]
        assert kinds.count("false-positive-determination") == 2  # first and forced pass
        assert "pr-opened" in kinds
        assert "pending-upstream-fix" not in kinds
        # the OpenVEX export that `kiln publish` signs and attaches carries the statement
        exported = json.loads(openvex_for_image(store, "base-dev"))
    (attested,) = exported["statements"]
    assert (attested["status"], attested["justification"]) == (
        "not_affected",
        "component_not_present",
    )
    assert attested["products"] == [{"@id": "pkg:deb/debian/libtiff6"}]
    # `kiln factory prs` shows the kind
    monkeypatch.chdir(repo)
    monkeypatch.setenv("KILN_TEMPORAL", temporal.address)
    assert main(["factory", "prs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["kind"], listed["cves_fixed"]) == ("vex", ["CVE-2026-0001"])
