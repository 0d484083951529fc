"""The research step: the reconcile hands the CVEs no Debian fix covers to the research agent.

Issue 17 item 4 ("the factory calls the same code for ``pending-upstream-fix``
advisories"). After bump, vex and backport leave CVEs open, the reconcile's ``research``
step searches at most ``limit`` of them per image and generation (``KILN_FACTORY_RESEARCH_MAX``,
default 3; a CVE skipped before any search, for want of text or because its source's
repository was already unreachable in this pass, does not count), each with its Debian
source package known, and runs what ``kiln research CVE --package SRC --backport`` runs:

1. the CVE's text from kiln's vulnerability database, else the Debian unstable changelog
   item naming its fix (``kiln.research.vulndb.record_from_db_or_unstable``), with the
   commits unstable's DEP-3 patches name (``kiln.research.dep3``); a CVE with no text is
   researched only when such a commit is named;
2. the upstream repository discovered from the package's packaging
   (``kiln.research.discover``: ``KILN_RESEARCH_MIRRORS`` first, then a bounded clone);
3. the candidates collected and ranked (``kiln.research.finder.find_fix_commits``, the
   shipped ranker); the first one's diff and DEP-3 headers (``kiln.research.patch``);
4. affected or not on the release's own source, and the diff that applies to it
   (``kiln.research.backport.check_on_release``, as ``kiln research --backport``: the
   commit's own diff, else its 3-way port onto the upstream tag of the release's version;
   the advisory's own version ranges keep a ``not_affected`` from the hunks unclaimed):
   ``not_affected`` is a VEX statement (``vulnerable_code_not_present``, the hunks without
   counterpart as evidence, the ranking as notes) in the ``vex`` pull request the vex step
   opens (``vex/<image>.openvex.json``; statements of both merged into one document), but
   only when the advisory itself names the commit (a commit link or the CVE id in its
   message, ``identified``): a wrongly ranked first candidate whose code the release
   lacks must not hide a real vulnerability;
   otherwise the patch goes through ``kiln.pipeline.backport.backport_patch`` (applies to
   the release's source, sandboxed build with the package's tests, image rebuilt and
   scanned) and becomes a pull request of kind ``research`` (labelled needs review) with
   the ranking as evidence: the top 5 candidates with scores and features, why the first
   won, the verdict, the patch, the build and test results.

One research pull request per image and generation (cheapest first: the other CVEs
wait for the next generation). Everything that cannot be done (no text for the CVE, no
repository reachable, no candidate, a binary diff, a patch that does not apply, a
build or test that fails) is an ``Attempt`` with its reason, recorded per CVE as
``remediation-attempted`` (step ``research``); the CVE stays ``pending-upstream-fix``.
Only a bug (not a ``KilnError``) fails the step.

``ResearchWorld`` holds the parts that reach outside (packaging, the database, the
release's source, the build); ``CatalogSteps.research`` fills it with the real ones,
tests with a git repository and trees they build.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kiln.errors import InputError, KilnError
from kiln.factory.activities import Beat
from kiln.factory.model import Attempt, Observation, Proposal, ReconcileRequest, StepResult
from kiln.forge.evidence import CveRow
from kiln.research.affected import AffectedVerdict
from kiln.research.dep3 import commits_in_headers, with_patch_origins
from kiln.research.discover import (
    Opener,
    Packaging,
    Resolution,
    UpstreamNotFoundError,
    discover,
    open_upstream,
    upstream_version,
)
from kiln.research.features import Features
from kiln.research.finder import Ranking, find_fix_commits
from kiln.research.gitrepo import GitRepo, open_repo
from kiln.research.patch import add_port_hint, commit_diff, dep3_headers, ported_headers
from kiln.research.rank import Ranker, load_model
from kiln.research.record import CveRecord
from kiln.research.versions import advisory_affects
from kiln.text import plain_line

# catalog imports this module, and the heavy modules load only when a reconcile gets here
# ruff: noqa: PLC0415

LIMIT_ENV = "KILN_FACTORY_RESEARCH_MAX"
DEFAULT_LIMIT = 3
MAX_LIMIT = 50
if TYPE_CHECKING:
    from kiln.factory.catalog import CatalogSteps
    from kiln.pipeline.backport import UnstableFix
    from kiln.research.backport import ReleaseCheck

TOP = 5  # candidates quoted in the pull request


def research_limit(environ: Mapping[str, str] = os.environ, default: int = DEFAULT_LIMIT) -> int:
    """CVEs researched per image and generation: ``$KILN_FACTORY_RESEARCH_MAX`` or ``default``."""
    raw = environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > MAX_LIMIT:
        raise InputError(f"{LIMIT_ENV}={raw[:20]!r}: expected a number from 0 to {MAX_LIMIT}")
    return int(raw)


@dataclass(frozen=True)
class Fix:
    """What the backport of the chosen upstream commit needs."""

    image: str
    source: str
    version: str  # the release's source version the patch goes on
    cve: str
    commit: str
    diff: bytes
    headers: tuple[tuple[str, str], ...]  # DEP-3
    name: str  # the quilt patch's file name
    ported_onto: str | None = None  # the upstream tag ``diff`` was 3-way merged onto


class ReleaseChecker(Protocol):
    """``kiln.research.backport.check_on_release``'s shape: affected or not on the
    release's source, and the diff that applies to it (the commit's own, or its 3-way
    port onto the upstream tag when ``repo`` has it)."""

    def __call__(
        self,
        source: str,
        version: str,
        diff: bytes,
        *,
        name: str,
        work: Path,
        repo: GitRepo | None = None,
        sha: str = "",
        advisory: str | None = None,
    ) -> ReleaseCheck: ...


@dataclass(frozen=True)
class CodeNotPresent:
    """A ``vulnerable_code_not_present`` verdict from an upstream fix commit (the shape
    ``kiln.pipeline.vexevidence.vex_document`` and ``vex_proposal`` read)."""

    image: str
    source: str
    cve: str
    fix_origin: str  # the upstream commit's URL
    tree: str  # "jq 1.7.1-6+deb13u4"
    hunks: tuple[str, ...]  # "path @@ header @@: reason", each without counterpart
    installed: tuple[str, ...] = ()
    statement: bool = True
    justification: str | None = "vulnerable_code_not_present"

    @property
    def reason(self) -> str:
        """One line: why the statement holds."""
        return f"no code hunk of {self.fix_origin} has a counterpart in {self.tree}"

    def impact_statement(self) -> str:
        """The statement's text, readable without the evidence list."""
        return (
            f"The upstream fix for {self.cve} ({self.fix_origin}, found by kiln's research "
            f"agent) changes code that {self.tree} does not have: none of its code hunks' "
            "pre-images occurs in the release's source (Debian patches applied)."
        )

    def evidence(self) -> list[str]:
        """Each hunk without counterpart, and the tree searched."""
        return [*self.hunks, f"source searched: {self.tree} (dpkg-source -x)"]


@dataclass
class ResearchWorld:
    """The parts of a research run that reach outside the factory (see the docstring)."""

    packaging: Callable[[str], Packaging]  # source -> its packaging (fetch_packaging)
    record: Callable[[str], CveRecord | None]  # CVE -> its text (the database)
    check: ReleaseChecker  # affected, and the diff that applies (check_on_release)
    backport: Callable[[Fix, Path, Beat], Proposal]  # the fix built, tested, scanned
    installed: Callable[[str], tuple[str, ...]]  # source -> the binaries the image has
    labels: Sequence[str]  # the image's labels (base, base-dev) for determinations
    before: Callable[[Sequence[str]], list[CveRow]]  # the lock's rows of these CVEs
    patch_headers: Callable[[str, str], list[list[tuple[str, str]]]] = lambda _s, _c: []
    mirrors: Sequence[Path] = ()
    opener: Opener = open_repo
    ranker: Ranker | None = None


class _NoRemedyError(Exception):
    """This CVE gets no proposal (an expected end, with its outcome and reason)."""

    def __init__(self, outcome: str, reason: str, *, counted: bool = True) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.counted = counted  # against the cap: False when nothing was searched


@dataclass
class _Found:
    """What researching one CVE produced."""

    absent: CodeNotPresent | None = None
    proposal: Proposal | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # the ranking, for a vex statement


@dataclass
class _Run:
    world: ResearchWorld
    request: ReconcileRequest
    seen: Observation
    work: Path
    beat: Beat
    ranker: Ranker = field(init=False)
    # source -> why its upstream repository could not be opened, and for which CVE
    unreachable: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ranker = self.world.ranker or load_model()

    def one(self, source: str, cve: str, *, build: bool) -> _Found:
        """Research one CVE of ``source`` (``build``: a backport may still be proposed)."""
        world, beat = self.world, self.beat
        headers: list[list[tuple[str, str]]] = []
        try:
            headers = world.patch_headers(source, cve)
        except KilnError as exc:  # one candidate source among several
            beat(f"research {cve}: unstable's patches not read: {plain_line(exc.message)}")
        record = world.record(cve)
        if record is None:
            if not any(commits_in_headers(h) for h in headers):
                raise _NoRemedyError(
                    "skipped",
                    "not in the vulnerability database (no text to rank commits against) "
                    "and no Debian patch names an upstream commit",
                    counted=False,
                )
            record = CveRecord(cve=cve, description="")  # the named commits are the lead
        record = with_patch_origins(record, headers)
        if source in self.unreachable:
            why, first = self.unreachable[source]
            raise _NoRemedyError("failed", f"{why} (as for {first}, this pass)", counted=False)
        beat(f"research {cve}: discovering the upstream repository of {source}")
        found = discover(world.packaging(source))
        version = found.packaging.version
        try:
            with open_upstream(found, mirrors=world.mirrors, opener=world.opener) as (git, used):
                beat(f"research {cve}: ranking the commits of {used.candidate.url}")
                ranking = find_fix_commits(record, git, self.ranker)
                if not ranking.kiln:
                    raise _NoRemedyError("skipped", f"no candidate commit in {used.candidate.url}")
                best = ranking.kiln[0].commit
                named = identified(ranking.kiln[0].features)
                try:
                    diff = commit_diff(git, best)
                except KilnError as exc:
                    raise _NoRemedyError(
                        "failed", f"{best.sha[:12]}: {plain_line(exc.message)}"
                    ) from exc
                dep3 = dep3_headers(record, best, repo_url=used.candidate.url, today=_today())
                name = f"{cve}-{best.sha[:12]}.patch"
                beat(f"research {cve}: is {source} {version} affected by {best.sha[:12]}?")
                checked = world.check(
                    source, version, diff, name=name, work=self.work / f"affected-{cve}",
                    repo=git, sha=best.sha,
                    advisory=advisory_affects(record, upstream_version(version)),
                )  # fmt: skip
        except UpstreamNotFoundError as exc:
            tried = "; ".join(plain_line(d)[:200] for d in exc.details[:4])
            why = f"repository unreachable: {plain_line(exc.message)}: {tried}"
            self.unreachable[source] = (why, cve)
            raise _NoRemedyError("failed", why) from exc
        origin = dict(dep3).get("Origin", best.sha).removeprefix("upstream, ")
        verdict = checked.verdict
        evidence = ranking_notes(ranking, used, verdict, f"{source} {version}")
        if checked.note:
            evidence.append(f"note: {checked.note}")
        if checked.ported_onto is not None:
            dep3 = ported_headers(dep3, checked.ported_onto)
            evidence.append(
                f"the fix did not apply as is ({len(checked.rejected)} lines from patch); "
                f"ported by a 3-way merge onto {checked.ported_onto}, and the port applies "
                f"to {source} {version}"
            )
        if verdict.status == "not_affected" and not named:
            raise _NoRemedyError(
                "skipped",
                f"not affected by {best.sha[:12]}, the top-ranked candidate, but no commit "
                f"link or message names it as {cve}'s fix: no VEX statement on a ranking "
                "alone (a human decides)",
            )
        if verdict.status == "not_affected":
            missing = tuple(
                f"{h.hunk.path} {h.hunk.header}: {h.reason}" for h in verdict.hunks if not h.present
            )
            absent = CodeNotPresent(
                self.request.image, source, cve, origin, f"{source} {version}", missing,
                world.installed(source),
            )  # fmt: skip
            return _Found(absent=absent, reason=f"not affected: {absent.reason}", notes=evidence)
        if not build:
            raise _NoRemedyError(
                "skipped",
                f"{verdict.status} by {best.sha[:12]}; one research pull request per "
                "generation is open already: left for the next generation",
            )
        fix = Fix(
            self.request.image, source, version, cve, best.sha, checked.diff, tuple(dep3),
            name, checked.ported_onto,
        )  # fmt: skip
        beat(f"research {cve}: backporting {best.sha[:12]} to {source} {version}")
        built = world.backport(fix, self.work / f"backport-{cve}", beat)
        subject = plain_line(best.subject)[:60]
        proposal = dataclasses.replace(
            built,
            kind="research",
            title=f"{self.request.image}: upstream fix for {cve} in {source} "
            f"({best.sha[:12]} {subject}), needs review",
            notes=[
                "needs review: found by kiln's research agent (ranked, not curated)",
                *evidence,
                *built.notes,
            ][:200],
        )
        return _Found(proposal=proposal, reason=f"proposed {best.sha[:12]} ({origin})")


def identified(features: Features) -> bool:
    """Whether the advisory itself names this commit as the fix: a commit link (the
    advisory's references or text, a Debian patch's ``Origin``) or the CVE id in its
    message. A ``not_affected`` statement needs it: a wrongly ranked first candidate
    whose code the release lacks would otherwise hide a real vulnerability."""
    return bool(features.values.get("commit_in_advisory") or features.values.get("cve_in_message"))


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def ranking_notes(
    ranking: Ranking, used: Resolution, verdict: AffectedVerdict, tree: str
) -> list[str]:
    """The ranking as a reviewer reads it: where the repository came from, the top
    candidates with scores and features, why the first won, the affected verdict."""
    lines = [
        f"upstream: {used.candidate.describe()}, read from {used.location}",
        f"{ranking.candidates} candidate commits ranked in {ranking.seconds:.1f} s "
        "(kiln's ranker; Prospector's rules put "
        + (f"{ranking.baseline[0].commit.sha[:12]} first)" if ranking.baseline else "none first)"),
    ]
    for i, r in enumerate(ranking.kiln[:TOP], 1):
        lines.append(
            f"candidate {i}: {r.commit.sha[:12]} score {r.score:+.3f} "
            f"{plain_line(r.commit.subject)[:80]!r}; features: "
            + ("; ".join(r.features.fired[:8]) or "none fired")
            + f"; from {', '.join(r.sources)}"
        )
    first = ranking.kiln[0]
    margin = (
        f"{first.score - ranking.kiln[1].score:.3f} above the second"
        if len(ranking.kiln) > 1
        else "the only candidate"
    )
    lines.append(
        f"why the first won: score {first.score:+.3f}, {margin}; "
        + ("; ".join(first.features.fired[:8]) or "no feature fired")
        + (
            f"; Prospector's rules: {json.dumps(first.rules, sort_keys=True)}"
            if first.rules
            else ""
        )
    )
    present = sum(1 for h in verdict.hunks if h.present)
    lines.append(
        f"affected? {verdict.status}: {present} of {len(verdict.hunks)} hunks of the fix have "
        f"a counterpart in {tree}"
    )
    return lines


def merge_vex(first: Proposal, more: Proposal) -> Proposal:
    """One ``vex`` proposal of two for the same image and generation (the vex step's and
    research's): the OpenVEX documents' statements together, notes, rows and
    determinations of both. The forge keeps one pull request per generation, so a second
    vex proposal would be dropped."""
    path = f"vex/{first.image}.openvex.json"
    files, extra = first.decoded(), more.decoded()
    old, new = files.get(path), extra.get(path)
    if old is None or new is None:
        raise InputError(f"a vex proposal for {first.image} carries no {path}")
    document = json.loads(old)
    document["statements"] = [*document["statements"], *json.loads(new)["statements"]]
    merged = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    rows = {r.id: r for r in [*first.cves_before, *more.cves_before]}
    return dataclasses.replace(
        first,
        title=f"{first.image}: VEX not_affected for {', '.join(sorted(rows))}",
        files=Proposal.encode({**files, path: merged}),
        cves_before=list(rows.values()),
        notes=[*first.notes, *more.notes][:200],
        determinations=[*first.determinations, *more.determinations],
    )


def research(  # noqa: PLR0917 (a step's inputs)
    request: ReconcileRequest,
    seen: Observation,
    vex: Proposal | None,
    beat: Beat,
    world: ResearchWorld,
    work: Path,
    *,
    limit: int = DEFAULT_LIMIT,
) -> StepResult:
    """The research step over ``seen.unstable_cves`` and ``seen.unfixed_cves`` (``source
    CVE`` pairs the other remedies left open, and those no release fixes at all); ``vex``
    is the vex step's proposal of this generation, if any, which gets research's
    statements too."""
    from kiln.factory.catalog import vex_proposal  # catalog imports this module

    pairs = sorted(
        {
            (e.split(" ", 1)[0], e.split(" ", 1)[1])
            for e in [*seen.unstable_cves, *seen.unfixed_cves]
            if " " in e
        }
    )
    if not pairs:
        return StepResult("research", "nothing", "no open CVE with a known source package")
    run = _Run(world, request, seen, work, beat)
    attempts: list[Attempt] = []
    absent: list[CodeNotPresent] = []
    ranked: list[str] = []
    fix: Proposal | None = None
    # the cap counts CVEs searched: one without text, or of a source whose repository an
    # earlier CVE of this pass found unreachable, is skipped at no cost and counts not
    searched = 0
    over: list[str] = []
    for source, cve in pairs:
        if searched >= limit:
            over.append(cve)
            continue
        try:
            found = run.one(source, cve, build=fix is None)
        except _NoRemedyError as exc:
            attempts.append(Attempt(cve, exc.outcome, exc.reason))
            searched += exc.counted
            continue
        except KilnError as exc:
            # an expected end too (a patch that does not apply, a failing build or test,
            # an archive that lacks a file): a lead with its reason, never a dead letter
            why = f"{type(exc).__name__}: {plain_line(exc.message)}"
            attempts.append(Attempt(cve, "failed", why[:2000]))
            searched += 1
            continue
        searched += 1
        attempts.append(Attempt(cve, "proposed", found.reason))
        if found.absent is not None:
            absent.append(found.absent)
            ranked += [f"{cve}: {line}" for line in found.notes]
        fix = fix or found.proposal
    attempts += [
        Attempt(cve, "skipped", f"over the cap of {limit} CVEs researched per image and generation")
        for cve in over
    ]
    proposals: list[Proposal] = []
    if fix is not None:
        proposals.append(fix)
    if absent:
        said = vex_proposal(
            request.image, seen.generation, labels=world.labels, held=absent, leads=[],
            before=world.before([a.cve for a in absent]),
        )  # fmt: skip
        said = dataclasses.replace(said, notes=[*said.notes, *ranked][:200])
        proposals.append(merge_vex(vex, said) if vex is not None else said)
    reason = "; ".join(f"{a.vuln_id}: {a.reason}" for a in attempts[: len(attempts) - len(over)])
    if over:
        reason += f"; {len(over)} more over the cap of {limit}: {', '.join(over[:20])}"
    reason = reason[:2000]
    if not proposals:
        return StepResult("research", "nothing", reason, attempts=attempts)
    first, *more = proposals
    return StepResult("research", "proposed", reason, first, more=more, attempts=attempts)


def catalog_research(
    steps: CatalogSteps,
    request: ReconcileRequest,
    seen: Observation,
    vex: Proposal | None,
    beat: Beat,
) -> StepResult:
    """``research`` with the real world of a catalog checkout: trixie's packaging and
    source through kiln's signed paths, kiln's database, the shipped ranker, the
    checkout's staged spec and lock, ``check_on_release`` (the 3-way port the CLI makes),
    ``backport_patch`` with the shared package builds."""
    from kiln.factory.catalog import _backport_proposal
    from kiln.pipeline.backport import BeatProgress, backport_patch, cve_rows, find_unstable_fix
    from kiln.recipes.build import BuildError
    from kiln.research.backport import check_on_release
    from kiln.research.discover import fetch_packaging, mirror_dirs
    from kiln.research.vulndb import record_from_db_or_unstable
    from kiln.resolve.lockfile import read_lock
    from kiln.vuln.db import default_db_url
    from kiln.vuln.db.read import as_db_url

    loaded = steps._load(request.image)
    lock = read_lock(loaded.lock_path)
    db = as_db_url(steps.db_url) if steps.db_url else default_db_url()

    unstable: dict[str, UnstableFix] = {}  # CVE -> unstable's fix, read by headers

    def headers(source: str, cve: str) -> list[list[tuple[str, str]]]:
        fix = find_unstable_fix(source, cve)
        if fix is None:
            return []
        unstable[cve] = fix
        return [list(p.headers) for p in fix.patches]

    def record(cve: str) -> CveRecord | None:
        found, note = record_from_db_or_unstable(cve, db, unstable.get(cve))
        if note:
            beat(f"research {note}")
        return found

    def backport(fix: Fix, work: Path, beat: Beat) -> Proposal:
        work.mkdir(parents=True, exist_ok=True)
        steps.stage(request.image, work / "catalog")
        try:
            result = backport_patch(
                fix.source, fix.version, fix.diff, fix.headers, [fix.cve], name=fix.name,
                catalog_root=work / "catalog", work=work, image=request.image, install=False,
                progress=BeatProgress(beat), package_cache=steps.package_builds(),
                db=steps.db_url,
            )  # fmt: skip
        except BuildError as exc:
            if fix.ported_onto is not None:
                add_port_hint(exc, fix.ported_onto, f"{fix.source} {fix.version}")
            raise
        origin = dict(fix.headers).get("Origin", fix.commit)
        return _backport_proposal(request, seen, origin, "upstream", result)

    def before(cves: Sequence[str]) -> list[CveRow]:
        scan = steps._scan_lock(lock, f"{request.image} (checked-in lock)")
        return [r for r in cve_rows(scan.active) if r.id in set(cves)]

    world = ResearchWorld(
        packaging=fetch_packaging,
        record=record,
        check=check_on_release,
        backport=backport,
        installed=lambda source: tuple(
            sorted({p.name for p in lock.all_packages() if p.source == source})
        ),
        labels=sorted({loaded.spec.label(variant) for variant in lock.variants}),
        before=before,
        patch_headers=headers,
        mirrors=mirror_dirs(os.environ),
    )
    work = steps._work(request.image, f"{seen.generation[:16]}-research")
    limit = research_limit(os.environ, steps.research_max)
    return research(request, seen, vex, beat, world, work, limit=limit)
