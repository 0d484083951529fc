"""The engine on a real Temporal dev server, with fast steps injected through ``Steps``.

Replays a recorded event sequence (duplicates, a flapping mirror), fails steps in the
ways the world fails them (transport errors, failing tests, a forge answering 500,
malformed feed data) and checks what the factory did about each: exactly one build per
image and generation, retries with backoff, dead letters with their reason, ``retry``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client

from kiln.factory.activities import FactoryActivities
from kiln.factory.catalog import EventSink
from kiln.factory.engine import connect, enqueue, make_worker, retry, settle, status
from kiln.factory.model import ReconcileResult, StepPolicy, workflow_id
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.wiring import advisory_sink
from kiln.vuln.advisories import AdvisoryStore

from .fakesteps import FakeSteps, lines

DATA = Path(__file__).parent / "data"
FAST = StepPolicy(max_attempts=3, initial_backoff_s=0.2, max_backoff_s=1, heartbeat_s=5)
T = TypeVar("T")


def _world(directory: Path, **images: object) -> None:
    (directory / "world.json").write_text(json.dumps(images))


def _with_worker(
    endpoint: Endpoint,
    directory: Path,
    body: Callable[[Client], Awaitable[T]],
    sink: EventSink | None = None,
) -> T:
    """Run ``body`` while an in-process worker with ``FakeSteps`` serves the queue."""

    async def main() -> T:
        client = await connect(endpoint)
        activities = FactoryActivities(FakeSteps(directory, sink), FactoryState(directory))
        worker, executor = make_worker(client, activities, max_concurrent=2)
        try:
            async with worker:
                return await body(client)
        finally:
            executor.shutdown(wait=True)

    return asyncio.run(main())


async def _settle(client: Client, timeout: float = 60) -> None:
    """Wait until no reconcile is queued or running (failing after ``timeout``)."""
    await asyncio.wait_for(settle(client, quiet=0.3), timeout)


async def _result(client: Client, image: str) -> ReconcileResult:
    handle = client.get_workflow_handle(workflow_id(image), result_type=ReconcileResult)
    result: ReconcileResult = await handle.result()
    return result


def test_duplicate_and_flapping_events_give_one_build_per_image_and_generation(
    temporal: Endpoint, tmp_path: Path
) -> None:
    recorded = json.loads((DATA / "events-flapping.json").read_text())["events"]
    world: dict[str, dict[str, object]] = {}

    async def replay(client: Client) -> None:
        for event in recorded:
            world[event["image"]] = {"generation": event["generation"], "build_seconds": 0.5}
            _world(tmp_path, **world)
            await enqueue(client, event["image"], reason=event["source"], policy=FAST)
            await asyncio.sleep(0.15)
        await _settle(client)
        for image in world:  # the latest run of each key (visibility may lag behind)
            await _result(client, image)

    _with_worker(temporal, tmp_path, replay)
    builds = Counter(
        tuple(line.split()[1:3])
        for line in lines(tmp_path / "builds.log")
        if line.startswith("done")
    )
    # every generation the world was in is built exactly once, however many events
    assert builds == {("static", "s1"): 1, ("static", "s2"): 1, ("base", "b1"): 1}
    assert Counter(lines(tmp_path / "pr-calls.log")) == {
        "static s1": 1,
        "static s2": 1,
        "base b1": 1,
    }
    # the last reconcile of static saw the world as it was in the end (level-based)
    state = FactoryState(tmp_path)
    last = state.result("static")
    assert last is not None
    assert (last.generation, last.outcome) == ("s2", "pr-opened")
    assert state.settled("static") == ["s1", "s2"]


def test_a_transient_failure_is_retried_with_backoff_and_every_attempt_is_an_advisory_event(
    temporal: Endpoint, tmp_path: Path
) -> None:
    _world(tmp_path, static={"generation": "g1", "bump": "flaky"})

    async def once(client: Client) -> ReconcileResult:
        await enqueue(client, "static", reason="test", policy=FAST)
        return await _result(client, "static")

    db = str(tmp_path / "kiln.db")
    result = _with_worker(temporal, tmp_path, once, sink=advisory_sink(db))
    assert result.outcome == "pr-opened"
    starts = [x for x in lines(tmp_path / "builds.log") if x.startswith("start")]
    assert len(starts) == 2
    events = [json.loads(x) for x in lines(tmp_path / "events.log")]
    attempts = [
        (e[3]["outcome"], e[3]["attempt"]) for e in events if e[2] == "remediation-attempted"
    ]
    assert attempts == [("failed", "1"), ("succeeded", "2")]
    with AdvisoryStore.open(db) as store:
        history = store.history("static", "CVE-2026-0001")
    assert [(e.kind.value, e.data.get("outcome")) for e in history] == [
        ("remediation-attempted", "failed"),
        ("remediation-attempted", "succeeded"),
        ("pr-opened", None),
    ]
    assert "connection reset" in str(history[0].data["reason"])
    assert history[2].data["pr_id"] == "static-g1"


def test_a_permanently_failing_image_is_dead_lettered_and_retry_requeues_it(
    temporal: Endpoint, tmp_path: Path
) -> None:
    _world(tmp_path, static={"generation": "g1", "bump": "transport"})
    state = FactoryState(tmp_path)

    async def fail_then_retry(
        client: Client,
    ) -> tuple[ReconcileResult, ReconcileResult, str, int, ReconcileResult]:
        await enqueue(client, "static", reason="test", policy=FAST)
        first = await _result(client, "static")
        # the same generation again: the dead letter holds it, nothing is rebuilt
        await enqueue(client, "static", reason="duplicate", policy=FAST)
        again = await _result(client, "static")
        table = await status(client, state, ["static", "base"])
        row = next(r for r in table.images if r.image == "static")
        shown = row.state + " | " + (row.letter.reason if row.letter else "")
        builds = len([x for x in lines(tmp_path / "builds.log") if x.startswith("start")])
        _world(tmp_path, static={"generation": "g1", "bump": "ok"})
        released = await retry(client, state, "static")
        assert released is not None
        await _settle(client)
        return first, again, shown, builds, await _result(client, "static")

    first, again, row, builds, final = _with_worker(temporal, tmp_path, fail_then_retry)
    assert first.outcome == "dead-lettered"
    assert "TransportError" in first.reason
    assert "503" in first.reason
    assert again.outcome == "skipped"
    assert "dead-lettered" in again.reason
    assert row.startswith("dead-lettered | ")
    assert "503 Service Unavailable" in row
    assert builds == 3  # max_attempts, then no more until retry
    # retry re-queued the same generation with fresh attempts
    assert final.outcome == "pr-opened"
    assert final.generation == first.generation
    assert state.letter("static") is None


def test_errors_no_retry_fixes_are_not_retried_and_become_dead_letters(
    temporal: Endpoint, tmp_path: Path
) -> None:
    _world(
        tmp_path,
        static={"generation": "g1", "bump": "test-fails"},
        base={"generation": "b1", "pr": "500"},
        cc="not an object: garbage feed data",
    )
    state = FactoryState(tmp_path)

    async def three(client: Client) -> dict[str, ReconcileResult]:
        for image in ("static", "base", "cc"):
            await enqueue(client, image, reason="test", policy=FAST)
        return {image: await _result(client, image) for image in ("static", "base", "cc")}

    results = _with_worker(temporal, tmp_path, three)
    # a failing test: PolicyError, tried once
    assert results["static"].outcome == "dead-lettered"
    assert "PolicyError" in results["static"].reason
    assert "tests fail" in results["static"].reason
    builds = [x for x in lines(tmp_path / "builds.log") if x.startswith("start static")]
    assert len(builds) == 1
    # a forge answering 500: retried, then dead-lettered at the pr step, built once
    assert results["base"].outcome == "dead-lettered"
    assert results["base"].reason.startswith("pr: TransportError")
    assert lines(tmp_path / "pr-calls.log").count("base b1") == 3
    letter = state.letter("base")
    assert letter is not None
    assert (letter.step, letter.attempts) == ("pr", 3)
    # malformed feed data: an input error naming it, at the observe step
    assert results["cc"].outcome == "dead-lettered"
    assert "malformed feed data" in results["cc"].reason
    failed = [json.loads(x) for x in lines(tmp_path / "events.log")]
    assert any(e[0] == "static" and e[3]["outcome"] == "failed" for e in failed)


def test_a_remedy_not_allowed_leaves_the_generation_open(
    temporal: Endpoint, tmp_path: Path
) -> None:
    _world(tmp_path, static={"generation": "g1", "behind": False, "unstable": True})
    state = FactoryState(tmp_path)

    async def twice(client: Client) -> tuple[ReconcileResult, ReconcileResult]:
        await enqueue(client, "static", reason="demo", policy=FAST, steps=["bump"])
        first = await _result(client, "static")
        await enqueue(client, "static", reason="watch", policy=FAST)
        return first, await _result(client, "static")

    first, second = _with_worker(temporal, tmp_path, twice)
    assert first.outcome == "partial"
    assert first.steps == ["not tried here: vex, backport, research"]
    # not settled: the next reconcile of the same generation may try the backport
    assert second.outcome == "pending-upstream-fix"
    assert second.steps == [
        "vex: nothing",
        "backport: nothing",
        "research: nothing (no upstream research in the fake steps)",
    ]
    assert state.settled("static") == ["g1"]
