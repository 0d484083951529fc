"""The reconcile's steps as Temporal activities, over one injectable ``Steps`` interface.

``Steps`` is what a reconcile does to the world: observe an image, bump it, prove a CVE
cannot apply (VEX with evidence), backport from unstable, hand what is left to the
research agent, open a pull request, record advisory events. ``CatalogSteps``
(``kiln.factory.catalog``) is the real one; tests inject small fakes through this same
interface. ``FactoryActivities`` wraps a ``Steps`` as activities: they run in the
worker's thread pool, heartbeat from a side thread while a step works (a build is
long, and a worker killed mid-build stops heartbeating, so Temporal hands the attempt
to another worker), turn kiln's errors into Temporal failures (input, policy and
remote-content errors are not retried: trying again cannot help), and keep the
factory's records (last result, dead letters).
"""

from __future__ import annotations

import contextvars
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kiln.errors import InputError, KilnError, PolicyError, RemoteContentError
from kiln.factory.model import (
    DeadLetter,
    Observation,
    Proposal,
    PrResult,
    ReconcileRequest,
    ReconcileResult,
    StepResult,
)
from kiln.factory.state import FactoryState

# Error types a retry cannot fix: Temporal fails the activity at once (and the
# workflow dead-letters the image for this generation).
NON_RETRYABLE = (InputError.__name__, PolicyError.__name__, RemoteContentError.__name__)

Beat = Callable[[str], None]
# a step's outcome in the advisory log's words (remediation-attempted's ``outcome``)
_OUTCOMES = {"proposed": "succeeded", "nothing": "skipped", "failed": "failed"}
R = TypeVar("R")


class Steps(Protocol):
    """What a reconcile does to the world; every method may raise ``KilnError``."""

    def observe(self, request: ReconcileRequest) -> Observation:
        """The image's actual state and its generation."""
        ...

    def bump(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        """Relock to the archive's newer versions, build, test, scan: a proposal or not."""
        ...

    def backport(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        """A fix from Debian unstable rebuilt by kiln for the CVEs trixie does not fix."""
        ...

    def vex(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        """``not_affected`` statements with evidence for CVEs whose fix the image lacks."""
        ...

    def research(
        self, request: ReconcileRequest, seen: Observation, vex: Proposal | None, beat: Beat
    ) -> StepResult:
        """The research agent on the CVEs left open (``vex``: the vex step's proposal of
        this generation, which research's ``not_affected`` statements join)."""
        ...

    def open_pr(self, proposal: Proposal, dry_run: bool) -> PrResult:
        """The pull request for ``proposal`` (never a second one for its generation)."""
        ...

    def record(self, image: str, vuln_id: str, kind: str, data: dict[str, str]) -> None:
        """Append one advisory event about (image, vulnerability)."""
        ...


@dataclass
class StepInput:
    """What a remediation step activity receives."""

    request: ReconcileRequest
    seen: Observation


@dataclass
class ResearchInput(StepInput):
    """What the research step receives: also the vex step's proposal, if any."""

    vex: Proposal | None = None


@dataclass
class PrInput:
    """What the pull-request activity receives."""

    proposal: Proposal
    dry_run: bool


@dataclass
class EventInput:
    """One advisory event the workflow asks to record."""

    image: str
    vuln_id: str
    kind: str
    data: dict[str, str]


def vulnerabilities(seen: Observation) -> list[str]:
    """The vulnerability ids an observation found open (fixable, fixed in unstable, or
    fixed nowhere yet)."""
    ids = {
        *seen.open_cves,
        *(entry.split()[-1] for entry in [*seen.unstable_cves, *seen.unfixed_cves]),
    }
    return sorted(ids)


def failure(exc: BaseException) -> ApplicationError:
    """``exc`` as the Temporal failure an activity raises: kiln's errors by type (the
    ones no retry fixes marked non-retryable), anything else a retryable bug report."""
    if isinstance(exc, KilnError):
        return ApplicationError(
            exc.diagnostics(), type=type(exc).__name__, non_retryable=_non_retryable(exc)
        )
    last = traceback.format_exception_only(exc)[-1].strip()
    return ApplicationError(f"internal error: {last}", type="InternalError")


def _non_retryable(exc: KilnError) -> bool:
    return isinstance(exc, (InputError, PolicyError, RemoteContentError))


@contextmanager
def heartbeating(every: float) -> Iterator[Beat]:
    """Heartbeat every ``every`` seconds from a side thread while the block runs; yields
    a function the step calls to heartbeat at once with a progress note."""
    context = contextvars.copy_context()  # the activity's context, for the side thread
    stop = threading.Event()
    lock = threading.Lock()
    note = ["started"]

    def beat(text: str) -> None:
        with lock:
            note[0] = text
        activity.heartbeat(text)

    def loop() -> None:
        while not stop.wait(every):
            with lock:
                text = note[0]
            context.run(activity.heartbeat, text)

    thread = threading.Thread(target=loop, name="kiln-heartbeat", daemon=True)
    thread.start()
    try:
        yield beat
    finally:
        stop.set()
        thread.join()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FactoryActivities:
    """The activities a ``kiln factory worker`` registers, bound to one ``Steps``."""

    def __init__(self, steps: Steps, state: FactoryState, *, heartbeat_every: float = 5.0) -> None:
        self.steps = steps
        self.state = state
        self.heartbeat_every = heartbeat_every
        self._slots = threading.BoundedSemaphore(1)

    def limit(self, steps: int) -> None:
        """Run at most ``steps`` remediation steps (builds) at once in this process; the
        bookkeeping activities are not counted (they must not wait behind a build)."""
        self._slots = threading.BoundedSemaphore(max(1, steps))

    def all(self) -> list[Callable[..., object]]:
        """Every activity, for ``Worker(activities=...)``."""
        return [
            self.observe,
            self.bump,
            self.vex,
            self.backport,
            self.research,
            self.open_pr,
            self.record_event,
            self.record_result,
            self.dead_letter,
        ]

    def _guard(self, call: Callable[[], R]) -> R:
        try:
            return call()
        except ApplicationError:
            raise
        except Exception as exc:
            raise failure(exc) from exc

    @activity.defn(name="observe")
    def observe(self, request: ReconcileRequest) -> Observation:
        """Read the image's state; say why to skip when this generation is settled."""
        seen = self._guard(lambda: self.steps.observe(request))
        letter = self.state.letter(request.image)
        if letter is not None and letter.generation == seen.generation and not request.force:
            seen.skip = f"dead-lettered for this generation: {letter.reason.splitlines()[0]}"
            return seen
        if not request.force and seen.generation in self.state.settled(request.image):
            seen.skip = f"generation {seen.generation[:12]} is already reconciled"
        return seen

    def _step(self, name: str, run: Callable[[Beat], StepResult], given: StepInput) -> StepResult:
        attempt = activity.info().attempt
        with heartbeating(self.heartbeat_every) as beat, self._slots:
            try:
                result = self._guard(lambda: run(beat))
            except ApplicationError as exc:
                self._event(given, "remediation-attempted", name, "failed", exc.message, attempt)
                raise
        if not result.attempts:
            self._event(
                given, "remediation-attempted", name, result.outcome, result.reason, attempt
            )
        for tried in result.attempts:  # per vulnerability, each with its own reason
            self._event(
                given, "remediation-attempted", name, tried.outcome, tried.reason, attempt,
                only=tried.vuln_id,
            )  # fmt: skip
        return result

    def _event(  # noqa: PLR0917 (one event's fields)
        self,
        given: StepInput,
        kind: str,
        step: str,
        outcome: str,
        reason: str,
        attempt: int,
        *,
        only: str | None = None,
    ) -> None:
        if given.request.dry_run:
            return
        data = {
            "step": step,
            "outcome": _OUTCOMES.get(outcome, outcome),
            "reason": reason[:2000] or outcome,
            "attempt": str(attempt),
            "generation": given.seen.generation,
        }
        # the advisory log is per vulnerability: a bump with no CVE to fix (drift only)
        # is in Temporal's history and the factory's records, not in it
        for vuln in [only] if only else vulnerabilities(given.seen):
            self._record(given.request.image, vuln, kind, data)

    def _record(self, image: str, vuln: str, kind: str, data: dict[str, str]) -> None:
        self._guard(lambda: self.steps.record(image, vuln, kind, data))

    @activity.defn(name="bump")
    def bump(self, given: StepInput) -> StepResult:
        """The bump step (relock, build, test, scan)."""
        return self._step("bump", lambda b: self.steps.bump(given.request, given.seen, b), given)

    @activity.defn(name="backport")
    def backport(self, given: StepInput) -> StepResult:
        """The backport-from-unstable step."""
        return self._step(
            "backport", lambda b: self.steps.backport(given.request, given.seen, b), given
        )

    @activity.defn(name="vex")
    def vex(self, given: StepInput) -> StepResult:
        """The VEX-with-evidence step (remedy c)."""
        return self._step("vex", lambda b: self.steps.vex(given.request, given.seen, b), given)

    @activity.defn(name="research")
    def research(self, given: ResearchInput) -> StepResult:
        """The research hand-off (``kiln.factory.research_step``)."""
        return self._step(
            "research",
            lambda b: self.steps.research(given.request, given.seen, given.vex, b),
            given,
        )

    @activity.defn(name="open_pr")
    def open_pr(self, given: PrInput) -> PrResult:
        """Open or update the proposal's pull request (idempotent per generation)."""
        return self._guard(lambda: self.steps.open_pr(given.proposal, given.dry_run))

    @activity.defn(name="record_event")
    def record_event(self, event: EventInput) -> None:
        """Append one advisory event."""
        self._record(event.image, event.vuln_id, event.kind, event.data)

    @activity.defn(name="record_result")
    def record_result(self, result: ReconcileResult) -> ReconcileResult:
        """Stamp and keep the image's last result."""
        result.finished = _now()
        self._guard(lambda: self.state.record_result(result))
        return result

    @activity.defn(name="dead_letter")
    def dead_letter(self, letter: DeadLetter) -> None:
        """Keep the image's dead letter (visible in ``status`` until ``retry``)."""
        letter.time = _now()
        self._guard(lambda: self.state.dead_letter(letter))
