"""The engine's entry points: connect, run a worker, enqueue keys, one pass, status, retry.

A key (an image name) is enqueued as ``start_workflow(ReconcileWorkflow, id=
"reconcile-<image>", id_conflict_policy=USE_EXISTING)``: while a reconcile of that
image is queued or running, another enqueue returns the same workflow (and signals it,
so it is seen), so many events about one image collapse into one reconcile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
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
from kiln.factory.watch import WatchActivities, WatchRequest
from kiln.factory.workflows import ReconcileWorkflow, WatchWorkflow


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
        workflows=[ReconcileWorkflow, WatchWorkflow],
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


async def start_watch(
    client: Client,
    source: str,
    *,
    interval: float,
    rounds: int = 0,
    task_queue: str = TASK_QUEUE,
) -> WorkflowHandle[WatchWorkflow, int]:
    """Start the watch of ``source`` (or find the one running: one per source)."""
    return await client.start_workflow(
        WatchWorkflow.run,
        WatchRequest(source, interval, rounds),
        id=f"watch-{source}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


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
) -> list[ReconcileResult]:
    """One pass: run an in-process worker, enqueue every image, wait for each result."""
    worker, executor = make_worker(client, activities, max_concurrent=workers)
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
