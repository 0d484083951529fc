"""kill -9 of a worker process mid-step: the reconcile resumes on another worker.

The step is ``FakeSteps.bump`` (a build that takes seconds, heartbeating), injected
through the same ``Steps`` interface as the real build; the workers are separate
processes on a real Temporal dev server. The killed worker stops heartbeating, Temporal
hands the attempt to the second worker after the heartbeat timeout, and the pull
request is opened exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kiln.factory.engine import connect, enqueue
from kiln.factory.model import ReconcileResult, StepPolicy, workflow_id
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState

from .fakesteps import lines

ROOT = Path(__file__).resolve().parents[2]


def _worker(endpoint: Endpoint, directory: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.factory.worker_main", endpoint.address, str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _wait_for(path: Path, prefix: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for x in lines(path) if x.startswith(prefix)) < count:
        assert time.monotonic() < deadline, f"no {prefix!r} in {path} after {timeout}s"
        time.sleep(0.1)


def test_kill_9_mid_build_resumes_on_another_worker_and_opens_one_pr(
    temporal: Endpoint, tmp_path: Path
) -> None:
    (tmp_path / "world.json").write_text(
        json.dumps({"static": {"generation": "g1", "build_seconds": 4}})
    )
    policy = StepPolicy(max_attempts=3, initial_backoff_s=0.2, max_backoff_s=1, heartbeat_s=3)
    first = _worker(temporal, tmp_path)
    second: subprocess.Popen[str] | None = None
    try:

        async def start() -> None:
            client = await connect(temporal)
            await enqueue(client, "static", reason="test", policy=policy)

        asyncio.run(start())
        _wait_for(tmp_path / "builds.log", "start", 1)
        time.sleep(1)  # mid-build
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert not [x for x in lines(tmp_path / "builds.log") if x.startswith("done")]
        second = _worker(temporal, tmp_path)

        async def finish() -> ReconcileResult:
            client = await connect(temporal)
            handle = client.get_workflow_handle(workflow_id("static"), result_type=ReconcileResult)
            result: ReconcileResult = await asyncio.wait_for(handle.result(), 60)
            return result

        result = asyncio.run(finish())
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert result.outcome == "pr-opened"
    builds = lines(tmp_path / "builds.log")
    starts = [x for x in builds if x.startswith("start")]
    assert len(starts) == 2
    assert starts[0].split("pid=")[1] != starts[1].split("pid=")[1]  # another process
    assert [x for x in builds if x.startswith("done")] == ["done static g1"]
    assert lines(tmp_path / "pr-calls.log") == ["static g1"]  # published once
    last = FactoryState(tmp_path).result("static")
    assert last is not None
    assert last.outcome == "pr-opened"
