"""A worker killed mid-catalog: the workflow is durable, so a new worker (the next
``kiln catalog build`` of the same selection) finds it and finishes the image the dead
worker was building. Real Temporal dev server, real archive and build, kill -9.

The first worker is held inside its activity once the image is built (its heartbeat
"testing ..." blocks): with warm caches bc builds and tests in about a second, so a kill
"one second after the start" raced the finished result (CI at 05c64ff failed that way)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from kiln.factory.catalogbuild import (
    ImageJob,
    ImageOutcome,
    jobs_for,
    package_checker,
    plan,
    run_catalog,
    workflow_id,
)
from kiln.factory.engine import connect
from kiln.factory.server import Endpoint
from kiln.pipeline import ArchiveAccess

ROOT = Path(__file__).resolve().parents[2]

# the first worker: the same entry point `kiln catalog build` uses, in another process
WORKER = """
import asyncio, json, pathlib, sys, time
from kiln.factory import catalogbuild
from kiln.factory.catalogbuild import ImageJob, run_catalog
from kiln.factory.engine import connect
from kiln.factory.server import Endpoint

real = catalogbuild._build_and_test
marker = pathlib.Path(sys.argv[3])

def held(job, beat):
    def hold(message):
        beat(message)
        if message.startswith("testing"):  # built, not yet tested: the kill lands here
            marker.write_text(message)
            time.sleep(3600)
    return real(job, hold)

catalogbuild._build_and_test = held

async def main():
    client = await connect(Endpoint(sys.argv[1]))
    jobs = [ImageJob(**j) for j in json.loads(sys.argv[2])]
    await run_catalog(client, jobs, workers=1, heartbeat_timeout_s=6)

asyncio.run(main())
"""


async def _started(endpoint: Endpoint, jobs: list[ImageJob], deadline: float) -> str:
    """The run id of the catalog workflow once a worker runs its activity ("" if never)."""
    client = await connect(endpoint)
    while time.monotonic() < deadline:
        try:
            described = await client.get_workflow_handle(workflow_id(jobs)).describe()
        except Exception:
            await asyncio.sleep(0.5)
            continue
        pending = described.raw_description.pending_activities
        if any(p.state == 2 for p in pending):  # STARTED
            return described.run_id or ""
        await asyncio.sleep(0.5)
    return ""


async def _finished(endpoint: Endpoint, jobs: list[ImageJob]) -> tuple[str, str, int]:
    """The workflow's run id and status, and the attempt its activity finished on."""
    client = await connect(endpoint)
    handle = client.get_workflow_handle(workflow_id(jobs))
    described = await handle.describe()
    attempt = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            attempt = max(attempt, event.activity_task_started_event_attributes.attempt)
    return described.run_id or "", described.status.name if described.status else "", attempt


@pytest.mark.network
@pytest.mark.slow
def test_killed_worker_is_replaced_and_the_image_finishes(
    tmp_path: Path, temporal: Endpoint
) -> None:
    archive = ArchiveAccess.from_environment()
    found = plan(ROOT, {"debian-13": package_checker(archive, "debian-13")}, names=["bc"])
    jobs = jobs_for(tmp_path / "state", found.images, variants={"bc": ["runtime"]})
    marker = tmp_path / "built"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            temporal.address,
            json.dumps([asdict(j) for j in jobs]),
            str(marker),
        ],
        start_new_session=True,
    )
    try:
        first_run = asyncio.run(_started(temporal, jobs, time.monotonic() + 120))
        assert first_run, "the first worker never started the image"
        deadline = time.monotonic() + 600
        while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.read_text() == "testing bc"  # the first worker built bc, then held
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        assert not (tmp_path / "state" / "results" / "bc.json").exists()  # it did not finish

        async def second() -> list[ImageOutcome]:
            client = await connect(temporal)
            return await run_catalog(client, jobs, workers=1, heartbeat_timeout_s=6)

        (outcome,) = asyncio.run(second())
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    assert outcome.ok, outcome
    assert [v.label for v in outcome.variants] == ["bc"]
    assert (tmp_path / "state" / "results" / "bc.json").is_file()
    # the same workflow execution finished: the second worker resumed it (no new run),
    # and its activity finished on its second attempt (the killed one was the first)
    run_id, status, attempt = asyncio.run(_finished(temporal, jobs))
    assert run_id == first_run
    assert status == "COMPLETED"
    assert attempt == 2
