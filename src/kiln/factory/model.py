"""The values that cross the engine: what a workflow asks, what an activity answers.

Plain dataclasses of strings, numbers, lists and dicts (and the forge's evidence rows,
plain frozen data too), so Temporal's default data converter carries them as JSON
between workflow and activities on any worker.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kiln.forge.evidence import (
    AgentStep,
    CheckResult,
    CveRow,
    PackageChange,
    PatchOrigin,
    SizeChange,
)

TASK_QUEUE = "kiln-factory"
WORKFLOW_PREFIX = "reconcile-"
STEPS = ("bump", "vex", "backport", "research")  # the remedies, cheapest first

# An image key: the name of images/<key>.yaml (what the spec model accepts as a name).
_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def valid_key(image: str) -> bool:
    """Whether ``image`` can be a reconcile key (an image name; no path, no ``..``)."""
    return bool(_KEY.match(image)) and ".." not in image


def workflow_id(image: str) -> str:
    """The reconcile workflow's id for one image: the key, so enqueues collapse."""
    return f"{WORKFLOW_PREFIX}{image}"


@dataclass
class StepPolicy:
    """How long a step may take and how often it is tried per generation."""

    max_attempts: int = 3  # per step and generation, then the image is dead-lettered
    initial_backoff_s: float = 10.0
    backoff_coefficient: float = 2.0
    max_backoff_s: float = 600.0
    step_timeout_s: float = 3600.0  # start-to-close of one attempt (a build is long)
    heartbeat_s: float = 60.0  # a worker silent for this long is presumed dead
    observe_timeout_s: float = 600.0


@dataclass
class ReconcileRequest:
    """One reconcile of one image key (what ``start_workflow`` carries)."""

    image: str
    reason: str = "manual"  # which source enqueued it, e.g. "archive: trixie-security"
    dry_run: bool = False
    force: bool = False  # `kiln factory retry`: try a dead-lettered generation again
    policy: StepPolicy = field(default_factory=StepPolicy)
    steps: list[str] = field(default_factory=lambda: list(STEPS))  # remedies allowed


@dataclass
class Observation:
    """An image's actual state, read at the start of a reconcile."""

    image: str
    generation: str  # sha256 of spec + fresh lock + feed state: one per "change"
    behind: bool  # the archive resolves the spec to other packages than the lock
    drift: str = ""  # one line: how far behind
    changed: list[str] = field(default_factory=list)  # "name old -> new"
    open_cves: list[str] = field(default_factory=list)  # fixable ones in the lock as it is
    unstable_cves: list[str] = field(default_factory=list)  # "source CVE" only unstable fixes
    # "source CVE" with no fix published anywhere (status open): only research can help
    unfixed_cves: list[str] = field(default_factory=list)
    feed_state: str = ""
    skip: str = ""  # non-empty: why nothing is to be done (already reconciled, dead letter)


@dataclass
class Determination:
    """A ``false-positive-determination`` a proposal records once its pull request is
    open (remedy c: ``not_affected`` with a justification and the evidence)."""

    image: str  # the label the published image has: base, base-dev
    vuln_id: str
    package: str  # the binary the statement is about ("" for the image itself)
    justification: str
    impact_statement: str
    evidence: str


@dataclass
class Proposal:
    """A change a step made and checked, ready to become a pull request."""

    image: str
    kind: str  # bump | backport | vex | research
    generation: str
    title: str
    files: dict[str, str | None]  # path in the catalog -> base64 content (None: delete)
    cves_before: list[CveRow] = field(default_factory=list)
    cves_after: list[CveRow] = field(default_factory=list)
    packages: list[PackageChange] = field(default_factory=list)
    sizes: list[SizeChange] = field(default_factory=list)
    tests: list[CheckResult] = field(default_factory=list)
    compat: list[CheckResult] = field(default_factory=list)
    patches: list[PatchOrigin] = field(default_factory=list)
    agent: list[AgentStep] = field(default_factory=list)  # the repair agent's transcript
    digest: str = ""  # the built index digest (provenance subject)
    notes: list[str] = field(default_factory=list)
    determinations: list[Determination] = field(default_factory=list)  # vex: recorded on open

    @staticmethod
    def encode(files: Mapping[str, bytes | None]) -> dict[str, str | None]:
        """Files' bytes as ``files`` carries them (base64: patches need not be UTF-8)."""
        return {p: None if b is None else base64.b64encode(b).decode() for p, b in files.items()}

    def decoded(self) -> dict[str, bytes | None]:
        """``files`` as bytes again."""
        return {
            p: None if t is None else base64.b64decode(t, validate=True)
            for p, t in self.files.items()
        }

    @property
    def cves_fixed(self) -> list[str]:
        """CVEs present before and gone after."""
        after = {c.id for c in self.cves_after}
        return sorted({c.id for c in self.cves_before} - after)


@dataclass
class Attempt:
    """What a step did about one vulnerability (research: per CVE, with its reason)."""

    vuln_id: str
    outcome: str  # proposed | failed | skipped
    reason: str


@dataclass
class StepResult:
    """What one step did: proposed a change, found nothing to do, or failed."""

    step: str
    outcome: str  # proposed | nothing | failed | skipped
    reason: str = ""
    proposal: Proposal | None = None
    more: list[Proposal] = field(default_factory=list)  # research: a vex beside its fix
    attempts: list[Attempt] = field(default_factory=list)  # per CVE (else one for all)


@dataclass
class PrResult:
    """The pull request a proposal became (or would become, in a dry run)."""

    id: str
    url: str
    branch: str
    created: bool  # False: an open PR for this generation existed and was kept/updated
    dry_run: bool = False
    title: str = ""


@dataclass
class ReconcileResult:
    """How a reconcile ended; the last one per image is what ``status`` shows."""

    image: str
    generation: str
    outcome: str  # up-to-date | proposed | pr-opened | pr-exists | pending-upstream-fix
    #               | partial (a remedy was not allowed) | skipped | dead-lettered
    reason: str = ""
    prs: list[str] = field(default_factory=list)  # "<id> <branch>: <title>"
    steps: list[str] = field(default_factory=list)  # "bump: proposed", ...
    finished: str = ""  # ISO time, set by the recording activity


@dataclass
class DeadLetter:
    """An image whose step kept failing for one generation, kept until ``retry``."""

    image: str
    generation: str
    step: str
    reason: str
    attempts: int
    time: str = ""
