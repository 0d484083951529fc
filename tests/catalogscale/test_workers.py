"""Separate worker processes: one ``kiln catalog worker`` process started beside the
in-process worker (one slot each) takes the second image while the first builds, so two
images of one spec build at once in two interpreters. Real Temporal dev server, real
archive and build."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from kiln.factory.catalogbuild import (
    TASK_QUEUE,
    ImageOutcome,
    jobs_for,
    plan,
    run_catalog,
    start_worker_processes,
    stop_worker_processes,
)
from kiln.factory.engine import connect
from kiln.factory.server import Endpoint

ROOT = Path(__file__).resolve().parents[2]


async def _pollers(endpoint: Endpoint) -> set[str]:
    client = await connect(endpoint)
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return {p.identity for p in described.pollers}


@pytest.mark.network
@pytest.mark.slow
def test_a_worker_process_builds_beside_the_in_process_worker(
    tmp_path: Path, temporal: Endpoint
) -> None:
    found = plan(ROOT, None, names=["bc"])
    state = tmp_path / "state"
    jobs = jobs_for(state, found.images, run_tests=False)
    assert sorted(j.label for j in jobs) == ["bc", "bc-dev"]
    (extra,) = start_worker_processes(ROOT, temporal.address, 1, logs=tmp_path / "logs")
    try:
        deadline = time.monotonic() + 120
        while not any(p.startswith(f"{extra.pid}@") for p in asyncio.run(_pollers(temporal))):
            assert extra.poll() is None, "the worker process exited"
            assert time.monotonic() < deadline, "the worker process never polled"
            time.sleep(0.5)

        async def build() -> list[ImageOutcome]:
            client = await connect(temporal)
            return await run_catalog(client, jobs, workers=2, local_slots=1)

        outcomes = asyncio.run(build())
    finally:
        stop_worker_processes([extra])
    assert extra.returncode == 0  # SIGTERM: a graceful stop
    for outcome in outcomes:
        assert outcome.ok, outcome
    workers = {o.worker.split("@")[0] for o in outcomes}
    assert len(workers) == 2  # two processes built the two images
    assert str(extra.pid) in workers
