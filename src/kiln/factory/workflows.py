"""The reconcile workflow: one per image key, level-based, idempotent.

Workflow code runs in Temporal's sandbox and is replayed from history, so it only
decides: every read of the world and every change to it is an activity (by name,
``kiln.factory.activities``). A reconcile observes the image (its generation: spec +
fresh lock + feed state), skips a generation already settled or dead-lettered, then
tries the cheapest remedy first: bump, then VEX with evidence for the CVEs only unstable
fixes (a ``vex`` PR that does not end the plan: the CVEs it covers leave it; it is opened
after the research step, whose ``not_affected`` statements join it), then backport from
unstable, then the research agent (issue 17: upstream's fix found, ranked, checked
against the release's source, backported as a ``research`` PR or stated
``not_affected``); whatever is left is ``pending-upstream-fix``. A step that keeps
failing (attempts capped per generation, exponential backoff, errors no retry fixes not
retried) dead-letters the image with the reason until ``kiln factory retry``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from kiln.factory.activities import (
        NON_RETRYABLE,
        EventInput,
        PrInput,
        ResearchInput,
        StepInput,
        vulnerabilities,
    )
    from kiln.factory.model import (
        DeadLetter,
        Observation,
        Proposal,
        PrResult,
        ReconcileRequest,
        ReconcileResult,
        StepPolicy,
        StepResult,
    )
    from kiln.factory.watch import EnqueueInput, PollInput, PollResult, WatchPollResult

_BOOKKEEPING = timedelta(seconds=60)
_ROUNDS = 5


def _retry(policy: StepPolicy) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_backoff_s),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(seconds=policy.max_backoff_s),
        maximum_attempts=policy.max_attempts,
        non_retryable_error_types=list(NON_RETRYABLE),
    )


def _attempts(exc: ActivityError, policy: StepPolicy) -> int:
    """How many attempts a failed activity had: all of them, or one (not retryable)."""
    return policy.max_attempts if exc.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED else 1


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or exc)


class StepFailedError(Exception):
    """A step failed for good (its attempts spent, or an error no retry fixes)."""

    def __init__(self, step: str, reason: str, attempts: int) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        self.attempts = attempts


@workflow.defn(name="ReconcileWorkflow")
class ReconcileWorkflow:
    """Reconcile one image to its desired state (see the module docstring)."""

    def __init__(self) -> None:
        self.phase = "queued"
        self.pokes: list[str] = []

    @workflow.signal
    def poke(self, reason: str) -> None:
        """Another enqueue of the same key while this reconcile runs: noted, not queued."""
        self.pokes.append(reason)

    @workflow.query
    def current_phase(self) -> str:
        """What the reconcile is doing now (observing, bump, pr, ...)."""
        return self.phase

    async def _run_step(
        self, name: str, request: ReconcileRequest, seen: Observation, vex: Proposal | None = None
    ) -> StepResult:
        self.phase = name
        policy = request.policy
        given = (
            ResearchInput(request, seen, vex) if name == "research" else StepInput(request, seen)
        )
        try:
            result: StepResult = await workflow.execute_activity(
                name,
                given,
                result_type=StepResult,
                start_to_close_timeout=timedelta(seconds=policy.step_timeout_s),
                heartbeat_timeout=timedelta(seconds=policy.heartbeat_s),
                retry_policy=_retry(policy),
            )
        except ActivityError as exc:
            raise StepFailedError(name, _reason(exc), _attempts(exc, policy)) from exc
        return result

    async def _open_pr(self, request: ReconcileRequest, proposal: Proposal) -> PrResult:
        self.phase = "pr"
        policy = request.policy
        try:
            pr: PrResult = await workflow.execute_activity(
                "open_pr",
                PrInput(proposal, request.dry_run),
                result_type=PrResult,
                start_to_close_timeout=timedelta(seconds=policy.observe_timeout_s),
                retry_policy=_retry(policy),
            )
        except ActivityError as exc:
            raise StepFailedError("pr", _reason(exc), _attempts(exc, policy)) from exc
        return pr

    async def _bookkeeping(self, name: str, arg: object) -> None:
        await workflow.execute_activity(
            name,
            arg,
            start_to_close_timeout=_BOOKKEEPING,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )

    @workflow.run
    async def run(self, request: ReconcileRequest) -> ReconcileResult:
        """Reconcile; again while enqueues arrived after the last observation (the state
        they announce may not have been seen), at most ``_ROUNDS`` times per run, then
        as a new run of the same id (a history that does not grow without end)."""
        rounds = 0
        while True:
            pokes = len(self.pokes)
            result = await self._round(request)
            if len(self.pokes) == pokes:
                return result
            request = replace(request, force=False, reason=self.pokes[-1])
            rounds += 1
            if rounds == _ROUNDS:
                workflow.continue_as_new(request)

    async def _round(self, request: ReconcileRequest) -> ReconcileResult:
        """Observe, remedy cheapest first, open pull requests, record the result."""
        self.phase = "observing"
        policy = request.policy
        try:
            seen = await workflow.execute_activity(
                "observe",
                request,
                result_type=Observation,
                start_to_close_timeout=timedelta(seconds=policy.observe_timeout_s),
                retry_policy=_retry(policy),
            )
        except ActivityError as exc:
            failed = StepFailedError("observe", _reason(exc), _attempts(exc, policy))
            return await self._dead_letter(request, "", failed)
        if seen.skip:
            self.phase = "done"
            return ReconcileResult(request.image, seen.generation, "skipped", seen.skip)
        try:
            result = await self._remedy(request, seen)
        except StepFailedError as failed:
            return await self._dead_letter(request, seen.generation, failed)
        self.phase = "done"
        if request.dry_run:
            return result
        await self._bookkeeping("record_result", result)
        return result

    async def _remedy(self, request: ReconcileRequest, seen: Observation) -> ReconcileResult:
        steps: list[str] = []
        prs: list[str] = []
        outcome = "up-to-date"
        unstable = bool(seen.unstable_cves)
        # a CVE no release fixes (status open) is research's alone: no unstable fix to
        # backport, no unstable fix whose code a VEX statement could check for
        upstream_only = unstable or bool(seen.unfixed_cves)
        wanted = {
            "bump": seen.behind,
            "vex": unstable,
            "backport": unstable,
            "research": upstream_only,
        }
        plan = [name for name, needed in wanted.items() if needed and name in request.steps]
        left = [name for name, needed in wanted.items() if needed and name not in request.steps]
        fixing = False  # a PR that changes the image (bump, backport, research), not only says
        vex: Proposal | None = None  # opened last: research's statements may join it
        for name in plan:
            if name == "backport" and not seen.unstable_cves:
                continue  # every unstable-only CVE has a VEX statement now
            if name == "research" and not (seen.unstable_cves or seen.unfixed_cves):
                continue
            step = await self._run_step(name, request, seen, vex)
            steps.append(f"{name}: {step.outcome}" + (f" ({step.reason})" if step.reason else ""))
            if step.outcome != "proposed" or step.proposal is None:
                continue
            made = [step.proposal, *step.more]
            for said in (p for p in made if p.kind == "vex"):
                # VEX changes no package: the CVEs it covers leave the plan, the remedies
                # go on for the others
                vex = said
                covered = set(said.cves_fixed)
                seen = replace(
                    seen,
                    unstable_cves=[e for e in seen.unstable_cves if e.split()[-1] not in covered],
                    unfixed_cves=[e for e in seen.unfixed_cves if e.split()[-1] not in covered],
                )
            change = next((p for p in made if p.kind != "vex"), None)
            if change is None:
                continue
            outcome = await self._propose(request, seen, change, prs)
            fixing = True
            break  # cheapest remedy first: one change per generation
        if vex is not None:
            said_outcome = await self._propose(request, seen, vex, prs)
            outcome = outcome if fixing else said_outcome
        if not prs and left:
            # a remedy this reconcile was not allowed to try: the generation stays open
            outcome = "partial"
            steps.append(f"not tried here: {', '.join(left)}")
        elif not fixing and (seen.open_cves or seen.unstable_cves or seen.unfixed_cves):
            outcome = outcome if prs else "pending-upstream-fix"
            if not request.dry_run:
                note = f"no remedy for generation {seen.generation[:12]}: " + "; ".join(steps)
                for cve in vulnerabilities(seen):
                    await self._bookkeeping(
                        "record_event",
                        EventInput(request.image, cve, "pending-upstream-fix", {"note": note}),
                    )
        reason = seen.drift or request.reason
        return ReconcileResult(request.image, seen.generation, outcome, reason, prs, steps)

    async def _propose(
        self, request: ReconcileRequest, seen: Observation, proposal: Proposal, prs: list[str]
    ) -> str:
        """Open ``proposal``'s pull request, record it; the reconcile's outcome word."""
        pr = await self._open_pr(request, proposal)
        prs.append(f"{pr.id} {pr.branch}: {pr.title}")
        if not request.dry_run:
            await self._record_pr(request, seen, proposal, pr)
        return "proposed" if pr.dry_run else "pr-opened" if pr.created else "pr-exists"

    async def _record_pr(
        self, request: ReconcileRequest, seen: Observation, proposal: Proposal, pr: PrResult
    ) -> None:
        """``pr-opened`` per CVE the proposal fixes, and a vex proposal's determinations."""
        data = {
            "pr_id": pr.id,
            "url": pr.url or f"{pr.branch} (local forge)",
            "branch": pr.branch,
            "generation": seen.generation,
        }
        for cve in proposal.cves_fixed:
            await self._bookkeeping(
                "record_event", EventInput(request.image, cve, "pr-opened", data)
            )
        for made in proposal.determinations:
            determined = {
                "package": made.package,
                "justification": made.justification,
                "impact_statement": made.impact_statement,
                "evidence": made.evidence,
            }
            await self._bookkeeping(
                "record_event",
                EventInput(made.image, made.vuln_id, "false-positive-determination", determined),
            )

    async def _dead_letter(
        self, request: ReconcileRequest, generation: str, failed: StepFailedError
    ) -> ReconcileResult:
        self.phase = "dead-lettered"
        result = ReconcileResult(
            request.image, generation, "dead-lettered", f"{failed.step}: {failed.reason}"
        )
        if request.dry_run:
            return result
        letter = DeadLetter(request.image, generation, failed.step, failed.reason, failed.attempts)
        await self._bookkeeping("dead_letter", letter)
        await self._bookkeeping("record_result", result)
        return result


@workflow.defn(name="WatchPollWorkflow")
class WatchPollWorkflow:
    """One poll of one source, started by the source's schedule (watch.py): poll,
    enqueue the keys a change concerns, done."""

    @workflow.run
    async def run(self, source: str) -> WatchPollResult:
        """Poll ``source``; a poll that fails fails this run (the schedule goes on)."""
        try:
            polled = await workflow.execute_activity(
                "poll",
                PollInput(source),
                result_type=PollResult,
                start_to_close_timeout=timedelta(minutes=15),
                retry_policy=_retry(StepPolicy()),
            )
        except ActivityError as exc:
            # recorded as this run's failure (the schedule's recent actions, the UI)
            raise ApplicationError(
                f"watch {source}: poll failed: {_reason(exc)}", type="PollFailed"
            ) from exc
        if polled.keys:
            await workflow.execute_activity(
                "enqueue_keys",
                EnqueueInput(polled.keys, f"{source}: {polled.note}"),
                start_to_close_timeout=_BOOKKEEPING,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            )
        return WatchPollResult(source, list(polled.keys), polled.note)
