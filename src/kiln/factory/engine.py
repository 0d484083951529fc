"""The engine's entry points: connect, run a worker, enqueue keys, one pass, status,
retry, and the watch's schedules (one per source: create or update, trigger, describe,
delete).

A key (an image name) is enqueued as ``start_workflow(ReconcileWorkflow, id=
"reconcile-<image>", id_conflict_policy=USE_EXISTING)``: while a reconcile of that
image is queued or running, another enqueue returns the same workflow (and signals it,
so it is seen), so many events about one image collapse into one reconcile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecution,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from kiln.errors import EnvironmentProblem, InputError
from kiln.factory.activities import FactoryActivities
from kiln.factory.model import (
    STEPS,
    TASK_QUEUE,
    WORKFLOW_PREFIX,
    DeadLetter,
    ReconcileRequest,
    ReconcileResult,
    StepPolicy,
    valid_key,
    workflow_id,
)
from kiln.factory.server import NAMESPACE, Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.watch import (
    SOURCES,
    WatchActivities,
    WatchPollResult,
    poll_workflow_id,
    schedule_id,
)
from kiln.factory.workflows import ReconcileWorkflow, WatchPollWorkflow


async def connect(endpoint: Endpoint) -> Client:
    """A client of the factory's Temporal (an environment error naming it if unreachable)."""
    try:
        return await Client.connect(endpoint.address, namespace=NAMESPACE)
    except (RPCError, RuntimeError) as exc:
        raise EnvironmentProblem(
            f"cannot reach Temporal at {endpoint.address}: {exc}",
            hint="check KILN_TEMPORAL, or unset it to let kiln run a local dev server",
        ) from exc


def make_worker(
    client: Client,
    activities: FactoryActivities,
    *,
    max_concurrent: int = 1,
    task_queue: str = TASK_QUEUE,
    watch: WatchActivities | None = None,
) -> tuple[Worker, ThreadPoolExecutor]:
    """A worker for the factory's workflows and the given activities (a thread pool runs
    them; ``max_concurrent`` steps at once; ``watch``: the watch's activities too). The
    caller shuts the executor down after the worker."""
    activities.limit(max_concurrent)
    executor = ThreadPoolExecutor(max_workers=max_concurrent + 4, thread_name_prefix="kiln-step")
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[ReconcileWorkflow, WatchPollWorkflow],
        activities=[*activities.all(), *(watch.all() if watch else [])],
        activity_executor=executor,
        max_concurrent_activities=max_concurrent + 4,
        max_concurrent_workflow_tasks=max(2, max_concurrent),
        # kiln's modules hold no workflow state: the sandbox uses them as imported
        # (re-importing them per workflow run cost time and broke the data classes'
        # identity for the converter)
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("kiln")
        ),
    )
    return worker, executor


async def enqueue(
    client: Client,
    image: str,
    *,
    reason: str,
    dry_run: bool = False,
    force: bool = False,
    policy: StepPolicy | None = None,
    task_queue: str = TASK_QUEUE,
    steps: Sequence[str] = STEPS,
) -> WorkflowHandle[ReconcileWorkflow, ReconcileResult]:
    """Enqueue the key ``image``: a new reconcile, or the one already queued or running
    (``steps``: the remedies it may try)."""
    if not valid_key(image):
        raise InputError(f"{image!r} is not an image name (images/NAME.yaml)")
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise InputError(f"unknown step {', '.join(unknown)}: use {', '.join(STEPS)}")
    request = ReconcileRequest(image, reason, dry_run, force, policy or StepPolicy(), list(steps))
    # signal-with-start: a running reconcile of the key gets the poke (and re-observes
    # when it has finished, if the poke came after its observation); none: one starts
    return await client.start_workflow(
        ReconcileWorkflow.run,
        request,
        id=workflow_id(image),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal="poke",
        start_signal_args=[reason],
    )


def _watch_schedule(source: str, interval: float, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WatchPollWorkflow.run, source, id=poll_workflow_id(source), task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval))]),
        # a slow poll is never run twice at once; a failed one does not pause the schedule
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, pause_on_failure=False),
    )


async def schedule_watch(
    client: Client, intervals: Mapping[str, float], *, task_queue: str = TASK_QUEUE
) -> dict[str, str]:
    """Create the schedule of each source (``watch-<source>``, firing every
    ``intervals[source]`` seconds), or update the one that exists (a second ``watch`` does
    not fail or duplicate it). Returns source -> "created" or "updated"."""
    done: dict[str, str] = {}
    for source, interval in intervals.items():
        if source not in SOURCES:
            raise InputError(f"unknown watch source {source!r}: use {', '.join(SOURCES)}")
        wanted = _watch_schedule(source, interval, task_queue)
        try:
            await client.create_schedule(schedule_id(source), wanted)
            done[source] = "created"
            continue
        except ScheduleAlreadyRunningError:
            pass

        def update(given: ScheduleUpdateInput, wanted: Schedule = wanted) -> ScheduleUpdate:
            # keep the schedule's state (a pause an operator set stays); replace the rest
            wanted.state = given.description.schedule.state
            return ScheduleUpdate(wanted)

        await client.get_schedule_handle(schedule_id(source)).update(update)
        done[source] = "updated"
    return done


async def stop_watch(client: Client, sources: Iterable[str] = SOURCES) -> list[str]:
    """Delete the watch schedules of ``sources``; the sources whose schedule existed."""
    deleted = []
    for source in sources:
        try:
            await client.get_schedule_handle(schedule_id(source)).delete()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                continue
            raise
        deleted.append(source)
    return deleted


def _run(action: ScheduleActionExecution) -> tuple[str, str] | None:
    """The (workflow id, run id) a schedule's action started."""
    if isinstance(action, ScheduleActionExecutionStartWorkflow):
        return action.workflow_id, action.first_execution_run_id
    return None


def _runs(description: ScheduleDescription) -> set[tuple[str, str]]:
    return {r for a in description.info.recent_actions if (r := _run(a.action)) is not None}


async def _poll_outcome(client: Client, source: str, run: tuple[str, str]) -> WatchPollResult:
    """The result of one poll run: its keys, or its failure as the note (``failed``)."""
    handle = client.get_workflow_handle(run[0], run_id=run[1], result_type=WatchPollResult)
    try:
        result: WatchPollResult = await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        return WatchPollResult(source, [], message, failed=True)
    return result


async def poll_now(client: Client, source: str, *, wait_start_s: float = 120.0) -> WatchPollResult:
    """Trigger one poll of ``source`` through its schedule and wait for it (a poll the
    schedule runs already is waited for first: overlap SKIP would drop the trigger)."""
    handle = client.get_schedule_handle(schedule_id(source))
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise InputError(f"no watch schedule for {source}: run `kiln factory watch`") from exc
        raise
    for running_now in description.info.running_actions:
        if (run := _run(running_now)) is not None:
            await _poll_outcome(client, source, run)
    seen = _runs(await handle.describe())
    await handle.trigger()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_start_s
    while True:
        new = sorted(_runs(await handle.describe()) - seen)
        if new:
            return await _poll_outcome(client, source, new[-1])
        if loop.time() > deadline:
            raise EnvironmentProblem(
                f"the watch schedule of {source} started no poll within {wait_start_s:.0f}s",
                hint="is the schedule paused? see Temporal's UI",
            )
        await asyncio.sleep(0.2)


@dataclass
class WatchStatus:
    """One watch schedule as ``kiln factory status`` shows it."""

    source: str
    interval_s: float
    paused: bool
    next_run: str  # ISO 8601, "" when none is planned
    last_run: str  # when the last poll started, "" before the first
    last_result: str  # "ok", "failed", "running", "" before the first
    last_detail: str  # the keys enqueued, or the failure
    polls: int
    skipped_overlap: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``status --json``)."""
        from dataclasses import asdict  # noqa: PLC0415

        return asdict(self)


async def watch_status(client: Client, sources: Iterable[str] = SOURCES) -> list[WatchStatus]:
    """The watch schedules that exist: interval, next run, the last poll's outcome."""
    found = []
    for source in sources:
        handle = client.get_schedule_handle(schedule_id(source))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                continue
            raise
        info = description.info
        intervals = description.schedule.spec.intervals
        interval = intervals[0].every.total_seconds() if intervals else 0.0
        next_run = info.next_action_times[0].isoformat() if info.next_action_times else ""
        last_run, result, detail = "", "", ""
        last = info.recent_actions[-1] if info.recent_actions else None
        run = _run(last.action) if last is not None else None
        if last is not None and run is not None:
            last_run = last.started_at.isoformat()
            state = await client.get_workflow_handle(run[0], run_id=run[1]).describe()
            if state.status is WorkflowExecutionStatus.RUNNING:
                result = "running"
            else:
                outcome = await _poll_outcome(client, source, run)
                result = "failed" if outcome.failed else "ok"
                detail = outcome.describe()
        found.append(
            WatchStatus(
                source,
                interval,
                description.schedule.state.paused,
                next_run,
                last_run,
                result,
                detail,
                info.num_actions,
                info.num_actions_skipped_overlap,
            )
        )
    return found


def catalog_images(root: os.PathLike[str] | str) -> list[str]:
    """The image keys of a checkout: the names of its ``images/*.yaml``."""
    from pathlib import Path  # noqa: PLC0415

    directory = Path(root) / "images"
    if not directory.is_dir():
        raise InputError(
            f"{directory} does not exist: run the factory in a catalog checkout (images/*.yaml)"
        )
    return sorted(p.stem for p in directory.glob("*.yaml") if valid_key(p.stem))


async def run_pass(
    client: Client,
    activities: FactoryActivities,
    images: Sequence[str],
    *,
    dry_run: bool,
    workers: int = 1,
    policy: StepPolicy | None = None,
    reason: str = "kiln factory run --once",
    steps: Sequence[str] = STEPS,
    watch: WatchActivities | None = None,
) -> list[ReconcileResult]:
    """One pass: run an in-process worker, enqueue every image, wait for each result
    (``watch``: the worker serves the watch schedules' polls meanwhile too)."""
    worker, executor = make_worker(client, activities, max_concurrent=workers, watch=watch)
    try:
        async with worker:
            handles = [
                await enqueue(
                    client, image, reason=reason, dry_run=dry_run, policy=policy, steps=steps
                )
                for image in images
            ]
            return list(await asyncio.gather(*(h.result() for h in handles)))
    finally:
        executor.shutdown(wait=True)


async def settle(client: Client, *, quiet: float = 1.0) -> None:
    """Return once no reconcile has been queued or running for ``quiet`` seconds (twice
    in a row: the visibility list may lag a start by a moment)."""
    calm = 0
    while calm < 2:
        calm = 0 if await running(client) else calm + 1
        await asyncio.sleep(quiet)


@dataclass
class ImageStatus:
    """One row of ``kiln factory status``."""

    image: str
    state: str  # queued | in flight | dead-lettered | idle
    phase: str = ""
    last: ReconcileResult | None = None
    letter: DeadLetter | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``status --json``)."""
        from dataclasses import asdict  # noqa: PLC0415

        return {
            "image": self.image,
            "state": self.state,
            "phase": self.phase,
            "last_result": asdict(self.last) if self.last else None,
            "dead_letter": asdict(self.letter) if self.letter else None,
        }


@dataclass
class FactoryStatus:
    """Everything ``status`` shows: per image, plus counts."""

    images: list[ImageStatus] = field(default_factory=list)

    def count(self, state: str) -> int:
        """How many images are in ``state``."""
        return sum(1 for i in self.images if i.state == state)


async def running(client: Client, images: Iterable[str] = ()) -> dict[str, str]:
    """Reconciles queued or running now: image -> "queued" or "in flight <activity>".

    Temporal's visibility list is eventually consistent (a reconcile enqueued a moment
    ago may not be listed yet), so each of ``images`` is also described by its workflow
    id, which is read from the workflow's own state.
    """
    ids = {f"{WORKFLOW_PREFIX}{image}" for image in images}
    query = f"WorkflowType = '{ReconcileWorkflow.__name__}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        if execution.id.startswith(WORKFLOW_PREFIX):
            ids.add(execution.id)
    found: dict[str, str] = {}
    for reconcile_id in sorted(ids):
        try:
            description = await client.get_workflow_handle(reconcile_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                continue
            raise
        if description.status is not WorkflowExecutionStatus.RUNNING:
            continue
        pending = description.raw_description.pending_activities
        started = [p.activity_type.name for p in pending if p.state == 2]  # STARTED
        image = reconcile_id.removeprefix(WORKFLOW_PREFIX)
        found[image] = f"in flight: {', '.join(started)}" if started else "queued"
    return found


async def status(
    client: Client | None, state: FactoryState, images: Iterable[str]
) -> FactoryStatus:
    """Queued, in flight, dead-lettered and last result per image (``client`` None: the
    records only, when Temporal is not reachable)."""
    images = list(images)
    live = await running(client, images) if client is not None else {}
    letters = {d.image: d for d in state.dead_letters()}
    last = {r.image: r for r in state.results()}
    rows = []
    for image in sorted(set(images) | set(live) | set(letters) | set(last)):
        phase = live.get(image, "")
        if image in live:
            kind = "in flight" if phase.startswith("in flight") else "queued"
        elif image in letters:
            kind = "dead-lettered"
        else:
            kind = "idle"
        rows.append(ImageStatus(image, kind, phase, last.get(image), letters.get(image)))
    return FactoryStatus(rows)


async def retry(client: Client, state: FactoryState, image: str) -> DeadLetter | None:
    """Release the image's dead letter and enqueue it again (forced: the same generation
    gets fresh attempts). The released letter, or None when it had none."""
    letter = state.release(image)
    await enqueue(client, image, reason="kiln factory retry", force=True)
    return letter
