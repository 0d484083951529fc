"""The make-test sample: 20 catalog images (three families, both releases, runtime and a
few -dev) generated, locked against today's archive, built, ELF-checked and tested in
bubblewrap through the real Temporal workflow, two at a time in two worker processes
(as `kiln catalog build --workers 2`). Every image must pass; a failure names the image
and its first failing check. The images of one release and variant share one base
layer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kiln.factory.catalogbuild import (
    SAMPLE,
    ImageOutcome,
    jobs_for,
    package_checker,
    plan,
    run_catalog,
    start_worker_processes,
    stop_worker_processes,
)
from kiln.factory.engine import connect
from kiln.factory.server import Endpoint
from kiln.pipeline import ArchiveAccess
from kiln.spec.family import RELEASES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.network
@pytest.mark.slow
def test_sample_builds_and_passes(tmp_path: Path, temporal: Endpoint) -> None:
    archive = ArchiveAccess.from_environment()
    found = plan(ROOT, {r: package_checker(archive, r) for r in RELEASES}, names=list(SAMPLE))
    assert sorted(i.name for i in found.images) == sorted(SAMPLE)
    # a state directory of the test's own (the checkout's .kiln is left alone)
    # retest: every image's tests run here, even if this machine passed them before
    jobs = jobs_for(tmp_path / "state", found.images, variants=SAMPLE, retest=True)
    assert sum(len(j.variants) for j in jobs) == 20

    async def main() -> list[ImageOutcome]:
        client = await connect(temporal)
        return await run_catalog(client, jobs, workers=2, local_slots=1)

    extra = start_worker_processes(ROOT, temporal.address, 1, logs=tmp_path / "logs")
    try:
        outcomes = asyncio.run(main())
    finally:
        stop_worker_processes(extra)
    problems = [f"{o.name}: {o.error}" for o in outcomes if o.error] + [
        f"{v.label}: {v.failures[0] if v.failures else 'not built'}"
        for o in outcomes
        for v in o.variants
        if not v.built or v.failures
    ]
    assert not problems, "\n".join(problems)
    images = [v for o in outcomes for v in o.variants]
    assert len(images) == 20
    assert all(v.closure_programs > 0 and v.tests_passed > 0 for v in images)
    # layering: shared: one base layer per release and variant, whatever else the image holds
    bases: dict[tuple[str, str], set[str]] = {}
    for o in outcomes:
        for v in o.variants:
            assert len(v.layers) == 2, v.label
            bases.setdefault((o.release, v.variant), set()).add(v.layers[0])
    assert all(len(digests) == 1 for digests in bases.values()), bases
