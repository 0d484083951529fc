"""The research hand-off (issue 17 item 4) through the real engine: a real Temporal dev
server, the real local git forge in a temporary catalog repository, kiln's real advisory
store, and the research step's real code (``kiln.factory.research_step.research``:
discovery, candidate collection, the shipped ranker, the DEP-3 headers, the affected
verdict) over a REAL upstream git repository this test builds (a bare clone found
through ``KILN_RESEARCH_MIRRORS``-style mirror folders).

What is not real here, and why: the observation (``FakeSteps``: a CVE left to research
without locking a real image), the package's packaging (a ``Packaging`` naming the
repository, instead of trixie's signed Sources: no Debian package has this upstream),
the CVE's text (a record instead of kiln's database), the release's source tree (a
folder the test writes instead of ``dpkg-source -x``) and, in the research-PR test, the
backport's build (a FAKE build step returning a proposal: the real sandboxed
``backport_patch`` path is tested in tests/research and tests/pipeline).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiln.cli.main import main
from kiln.factory.activities import Beat, FactoryActivities
from kiln.factory.catalog import vex_proposal
from kiln.factory.engine import connect, enqueue, make_worker
from kiln.factory.model import (
    Observation,
    Proposal,
    PrResult,
    ReconcileRequest,
    ReconcileResult,
    StepPolicy,
    StepResult,
)
from kiln.factory.prs import open_change
from kiln.factory.research_step import CodeNotPresent, Fix, ResearchWorld, research
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.wiring import advisory_sink
from kiln.forge import LocalGitForge
from kiln.forge.evidence import CheckResult, CveRow
from kiln.research.backport import ReleaseCheck, check_tree
from kiln.research.discover import Packaging
from kiln.research.record import CveRecord, VersionRange
from kiln.vuln.advisories import AdvisoryStore

from .fakesteps import FakeSteps, append, catalog_repo, lines

FAST = StepPolicy(max_attempts=2, initial_backoff_s=0.2, max_backoff_s=1, heartbeat_s=5)
CVE = "CVE-2026-1111"
OTHER = "CVE-2026-2222"  # the vex step's own statement (merged with research's)
DESCRIPTION = (
    "A heap buffer overflow in frob_widget in src/parse.c of libx before 1.2 allows a "
    "crafted widget header to write past the end of the name buffer."
)
OLD = "int parse(const char *s)\n{\n    return s[0] == 'x';\n}\n"
VULNERABLE = OLD + (
    "\nint frob_widget(const char *hdr, char *name)\n{\n"
    "    size_t len = (unsigned char)hdr[0];\n"
    "    memcpy(name, hdr + 1, len);\n"
    "    return 0;\n}\n"
)
FIXED = VULNERABLE.replace(
    "    memcpy(name, hdr + 1, len);\n",
    "    if (len >= NAME_MAX)\n        return -1;\n    memcpy(name, hdr + 1, len);\n",
)


def _git(repo: Path, *args: str, when: str = "2025-01-01T00:00:00Z") -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.invalid",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.invalid",
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True)


def _commit(repo: Path, files: dict[str, str], message: str, when: str) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "add", ".", when=when)
    _git(repo, "commit", "-qm", message, when=when)


RESTRICT = "int frob_widget(const char *hdr, char *restrict name)\n"


def upstream(tmp: Path, *, refactor: bool = False) -> Path:
    """A real upstream history: the vulnerable function arrives in 1.1, is fixed in 1.2.
    Returns the mirror folder holding its bare clone ``libx.git`` (no origin: taken on
    its name, like fixbench's clones). ``refactor``: between 1.1 and the fix, upstream
    changes frob_widget's signature, a line of the fix's context, so the fix no longer
    applies to 1.1 as is."""
    work = tmp / "upstream"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    _commit(
        work, {"src/parse.c": OLD, "README": "libx\n"}, "initial import", "2024-01-10T10:00:00Z"
    )
    _git(work, "tag", "v1.0", when="2024-01-10T10:00:00Z")
    history = [
        ({"README": "libx, a widget parser\n"}, "docs: say what libx is", "2024-11-02"),
        ({"src/parse.c": VULNERABLE}, "parse: add frob_widget for widget headers", "2025-02-03"),
        ({"Makefile": "all:\n\tcc -c src/parse.c\n"}, "build: add a Makefile", "2025-04-01"),
    ]
    if refactor:
        signature = "int frob_widget(const char *hdr, char *name)\n"
        history.append(
            (
                {"src/parse.c": VULNERABLE.replace(signature, RESTRICT)},
                "parse: restrict",
                "2025-05-01",
            )
        )
    for files, message, day in history:
        _commit(work, files, message, f"{day}T10:00:00Z")
        if message.startswith("parse: add"):
            _git(work, "tag", "v1.1", when=f"{day}T10:00:00Z")
    fixed = (
        FIXED.replace("int frob_widget(const char *hdr, char *name)\n", RESTRICT)
        if refactor
        else FIXED
    )
    _commit(
        work,
        {"src/parse.c": fixed},
        f"parse: fix heap buffer overflow in frob_widget ({CVE})\n\nCheck the name length.",
        "2025-06-01T10:00:00Z",
    )
    _git(work, "tag", "v1.2", when="2025-06-01T10:00:00Z")
    mirrors = tmp / "mirrors"
    mirrors.mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(mirrors / "libx.git")],
        check=True, capture_output=True,
    )  # fmt: skip
    _git(mirrors / "libx.git", "config", "--remove-section", "remote.origin")
    return mirrors


def _tree(path: Path, parse_c: str) -> Path:
    (path / "src").mkdir(parents=True)
    (path / "src" / "parse.c").write_text(parse_c)
    return path


def _record(cve: str) -> CveRecord | None:
    if cve != CVE:
        return None
    return CveRecord(
        cve=CVE,
        description=DESCRIPTION,
        published=datetime(2025, 6, 10, tzinfo=UTC),
        ranges=(VersionRange(start="1.1", end="1.2"),),  # frob_widget came in 1.1
    )


def fake_build(fix: Fix, work: Path, beat: Beat) -> Proposal:
    """A FAKE build step (not the sandbox): the proposal a passing backport would be."""
    beat(f"fake build of {fix.source} {fix.version} with {fix.name}")
    return Proposal(
        image=fix.image,
        kind="backport",
        generation="g1",
        title="replaced by the research step",
        files=Proposal.encode({f"recipes/{fix.source}/patches/{fix.name}": fix.diff}),
        cves_before=[CveRow(fix.cve, "libx1", "1.1-2", "high")],
        cves_after=[],
        tests=[CheckResult("build (a fake build step in this test)", "pass")],
        notes=["fake build: the sandboxed backport_patch path is tested in tests/pipeline"],
    )


def world(
    tmp: Path, *, homepage: str, tree: Path, mirrors: Path | None, version: str = "1.1-2"
) -> ResearchWorld:
    """The release is ``version`` with the source ``tree``; the check is the real
    ``check_tree`` (affected, patch, 3-way port) on a copy of it."""

    def check(source: str, version: str, diff: bytes, *, work: Path, **rest: Any) -> ReleaseCheck:
        copy = work / "tree"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(tree, copy)
        return check_tree(copy, source, version, diff, **rest)

    return ResearchWorld(
        packaging=lambda source: Packaging(source, version, "a test", homepage=homepage),
        record=_record,
        check=check,
        backport=fake_build,
        installed=lambda source: ("libx1",),
        labels=["base", "base-dev"],
        before=lambda cves: [CveRow(c, "libx1", "1.1-2", "high") for c in cves],
        mirrors=[mirrors] if mirrors else [],
    )


@dataclass
class ResearchSteps(FakeSteps):
    """FakeSteps with one (or two) CVEs left to research, the real research step, and
    PRs to the real local forge; ``vex_other``: the vex step states OTHER itself."""

    forge: LocalGitForge | None = None
    world: ResearchWorld | None = None
    vex_other: bool = False
    cves: list[str] = field(default_factory=lambda: [f"libx {CVE}"])
    unfixed: bool = False  # the CVEs are fixed nowhere (status open), not in unstable

    def observe(self, request: ReconcileRequest) -> Observation:
        if self.unfixed:
            return Observation(request.image, "g1", behind=False, unfixed_cves=list(self.cves))
        return Observation(request.image, "g1", behind=False, unstable_cves=list(self.cves))

    def vex(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        if not self.vex_other:
            return StepResult("vex", "nothing", "no diff to read")
        said = CodeNotPresent(
            request.image, "libx", OTHER, "Debian sid: other.patch", "libx 1.1-2",
            ("src/other.c @@ -1 +1 @@: file not in the tree",), ("libx1",),
        )  # fmt: skip
        proposal = vex_proposal(
            request.image, seen.generation, labels=["base", "base-dev"], held=[said],
            leads=[], before=[CveRow(OTHER, "libx1", "1.1-2", "medium")],
            timestamp="2026-12-07T11:00:00Z",
        )  # fmt: skip
        return StepResult("vex", "proposed", said.reason, proposal)

    def research(
        self, request: ReconcileRequest, seen: Observation, vex: Proposal | None, beat: Beat
    ) -> StepResult:
        unfixed = f" (unfixed: {seen.unfixed_cves})" if seen.unfixed_cves else ""
        append(self.directory / "research.log", f"{request.image} {seen.unstable_cves}{unfixed}")
        assert self.world is not None
        return research(request, seen, vex, beat, self.world, self.directory / "work")

    def open_pr(self, proposal: Proposal, dry_run: bool) -> PrResult:
        append(self.directory / "pr-calls.log", f"{proposal.kind} {proposal.generation}")
        assert self.forge is not None
        return open_change(self.forge, self.forge.repo, proposal, dry_run=dry_run)


def setup(
    tmp_path: Path,
    *,
    homepage: str,
    parse_c: str,
    mirrors: Path | None,
    version: str = "1.1-2",
    **extra: Any,
) -> tuple[ResearchSteps, LocalGitForge, str]:
    """A catalog repository with its local forge, kiln's advisory store, and the steps
    researching with ``world`` (the release's ``src/parse.c`` is ``parse_c``)."""
    forge = LocalGitForge(catalog_repo(tmp_path / "catalog", {"images/base.yaml": b"name: base\n"}))
    db = f"sqlite:///{tmp_path / 'kiln.db'}"
    tree = _tree(tmp_path / "tree", parse_c)
    researched = world(tmp_path, homepage=homepage, tree=tree, mirrors=mirrors, version=version)
    steps = ResearchSteps(tmp_path, advisory_sink(db), forge=forge, world=researched, **extra)
    return steps, forge, db


def _passes(
    temporal: Endpoint, steps: ResearchSteps, forced: tuple[bool, ...]
) -> list[ReconcileResult]:
    async def run() -> list[ReconcileResult]:
        client = await connect(temporal)
        activities = FactoryActivities(steps, FactoryState(steps.directory))
        worker, executor = make_worker(client, activities, max_concurrent=2)
        results: list[ReconcileResult] = []
        try:
            async with worker:
                for force in forced:
                    handle = await enqueue(client, "base", reason="test", policy=FAST, force=force)
                    results.append(await handle.result())
        finally:
            executor.shutdown(wait=True)
        return results

    return asyncio.run(run())


def _research_events(db: str, cve: str) -> list[dict[str, object]]:
    with AdvisoryStore.open(db) as store:
        return [
            dict(e.data)
            for e in store.history("base", cve)
            if e.kind.value == "remediation-attempted" and e.data.get("step") == "research"
        ]


def test_an_unreachable_repository_is_an_event_with_the_reason_and_the_cve_stays_pending(
    temporal: Endpoint, tmp_path: Path
) -> None:
    # a real clone attempt of a host that cannot resolve (.invalid), no mirror folder
    steps, forge, db = setup(
        tmp_path, homepage="https://git.example.invalid/libx.git", parse_c=OLD, mirrors=None
    )
    (first,) = _passes(temporal, steps, (False,))
    assert first.outcome == "pending-upstream-fix", first
    assert first.steps[-1].startswith(f"research: nothing ({CVE}: repository unreachable: ")
    assert forge.list() == []
    (event,) = _research_events(db, CVE)
    assert event["outcome"] == "failed"
    reason = str(event["reason"])
    assert reason.startswith("repository unreachable: no upstream repository of libx")
    assert "https://git.example.invalid/libx.git" in reason
    with AdvisoryStore.open(db) as store:
        state = {s.vuln_id: s for s in store.state("base")}
        assert state[CVE].resolution == "pending-upstream-fix"
    assert len(lines(tmp_path / "research.log")) == 1


def test_a_not_affected_verdict_joins_the_vex_pr_once_per_generation(
    temporal: Endpoint, tmp_path: Path
) -> None:
    # the release's source is 1.0, older than frob_widget: the fix's code is not there
    steps, forge, db = setup(
        tmp_path, homepage="https://github.com/example/libx", parse_c=OLD, version="1.0-3",
        mirrors=upstream(tmp_path), vex_other=True, cves=[f"libx {CVE}", f"libx {OTHER}"],
    )  # fmt: skip
    repo = forge.repo
    first, second, forced = _passes(temporal, steps, (False, False, True))
    assert first.outcome == "pr-opened", first
    assert first.steps[0].startswith("vex: proposed")
    assert first.steps[1] == "backport: nothing"
    assert first.steps[2].startswith(f"research: proposed ({CVE}: not affected: no code hunk")
    assert second.outcome == "skipped"
    assert forced.outcome == "pr-exists"  # the forge never opens a second one
    # research saw only what the vex step left
    assert lines(tmp_path / "research.log") == [f"base ['libx {CVE}']"] * 2
    (pr,) = forge.list()
    assert (pr.kind, pr.branch, pr.state) == ("vex", "kiln/vex/base", "open")
    assert sorted(pr.cves_fixed) == [CVE, OTHER]
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", "kiln/vex/base:vex/base.openvex.json"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    statements = {s["vulnerability"]["name"]: s for s in json.loads(shown)["statements"]}
    assert sorted(statements) == [CVE, OTHER]
    mine = statements[CVE]
    assert (mine["status"], mine["justification"]) == (
        "not_affected",
        "vulnerable_code_not_present",
    )
    assert mine["products"] == [{"@id": "pkg:deb/debian/libx1"}]
    assert "src/parse.c @@" in mine["impact_statement"]
    assert "the lines the fix changes are not in the file" in mine["impact_statement"]
    body = forge.body(pr.id).replace("\\", "")
    assert "https://github.com/example/libx/commit/" in body.replace("\u2060", "")
    with AdvisoryStore.open(db) as store:
        state = {s.vuln_id: s for s in store.state("base-dev")}
        assert state[CVE].status == "not_affected"
        made = state[CVE].determination
        assert made is not None
        assert made.data["justification"] == "vulnerable_code_not_present"
        kinds = [e.kind.value for e in store.history("base", CVE)]
        assert "pending-upstream-fix" not in kinds
        assert kinds.count("false-positive-determination") == 2  # first and forced pass
    events = _research_events(db, CVE)
    assert [e["outcome"] for e in events] == ["succeeded", "succeeded"]  # first, forced


def test_an_affected_release_gets_a_research_pr_with_the_ranking_evidence(
    temporal: Endpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the release's source is 1.1: it has the vulnerable frob_widget; FAKE build step
    steps, forge, db = setup(
        tmp_path, homepage="https://github.com/example/libx", parse_c=VULNERABLE,
        mirrors=upstream(tmp_path),
    )  # fmt: skip
    repo = forge.repo
    first, second = _passes(temporal, steps, (False, False))
    assert first.outcome == "pr-opened", first
    assert second.outcome == "skipped"
    (pr,) = forge.list()
    assert (pr.kind, pr.branch, pr.cves_fixed) == ("research", "kiln/research/base", (CVE,))
    assert pr.title.endswith("needs review")
    body = forge.body(pr.id).replace("\\", "").replace("\u2060", "")
    assert "needs review: found by kiln's research agent" in body
    assert "candidate 1: " in body
    assert f"fix heap buffer overflow in frob_widget ({CVE})" in body
    assert "why the first won: score " in body
    assert "affected? affected: 1 of 1 hunks of the fix have a counterpart in libx 1.1-2" in body
    assert "upstream: https://github.com/example/libx.git (from Homepage)" in body
    patch_name = next(
        p for p in steps_files(repo) if p.startswith("recipes/libx/patches/CVE-2026-1111-")
    )
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", f"kiln/research/base:{patch_name}"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    assert "+    if (len >= NAME_MAX)" in shown
    (event,) = _research_events(db, CVE)
    assert event["outcome"] == "succeeded"
    # `kiln factory prs` shows the kind
    monkeypatch.chdir(repo)
    monkeypatch.setenv("KILN_TEMPORAL", temporal.address)
    assert main(["factory", "prs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["kind"], listed["cves_fixed"]) == ("research", [CVE])


def test_a_cve_no_release_fixes_is_researched_and_only_researched(
    temporal: Endpoint, tmp_path: Path
) -> None:
    # status open: no stable, no unstable fix. vex and backport read unstable's fix, so
    # only research can act; it opens its PR as for an unstable-only CVE (FAKE build step)
    steps, forge, db = setup(
        tmp_path, homepage="https://github.com/example/libx", parse_c=VULNERABLE,
        mirrors=upstream(tmp_path), unfixed=True,
    )  # fmt: skip
    (first,) = _passes(temporal, steps, (False,))
    assert first.outcome == "pr-opened", first
    assert [s.split(":")[0] for s in first.steps] == ["research"]
    (pr,) = forge.list()
    assert (pr.kind, pr.cves_fixed) == ("research", (CVE,))
    assert lines(tmp_path / "research.log") == [f"base [] (unfixed: ['libx {CVE}'])"]
    (event,) = _research_events(db, CVE)
    assert event["outcome"] == "succeeded"


def steps_files(repo: Path) -> list[str]:
    """The files on the research branch."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "kiln/research/base"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return out.splitlines()


def test_the_cap_counts_cves_searched_and_leaves_the_others_with_a_reason(tmp_path: Path) -> None:
    """Without the engine: a cap of two CVEs searched. libx's repository is unreachable:
    its first CVE counts, its second fails for the same reason at no cost (no second
    clone attempt), one without text is skipped at no cost; liby's first CVE counts, its
    second is over the cap."""
    unreachable = world(tmp_path, homepage="https://git.example.invalid/libx.git",
                        tree=_tree(tmp_path / "tree", OLD), mirrors=None)  # fmt: skip
    asked: list[str] = []

    def packaging(source: str) -> Packaging:
        asked.append(source)
        return unreachable.packaging(source)

    def record(cve: str) -> CveRecord | None:
        return None if cve == "CVE-2026-3" else CveRecord(cve=cve, description=DESCRIPTION)

    steps = dataclasses.replace(unreachable, packaging=packaging, record=record)
    cves = ["libx CVE-2026-1111", "libx CVE-2026-2", "libx CVE-2026-3", "liby CVE-2026-4",
            "liby CVE-2026-5"]  # fmt: skip
    seen = Observation("base", "g1", behind=False, unstable_cves=cves)
    notes: list[str] = []
    result = research(
        ReconcileRequest("base"), seen, None, notes.append, steps, tmp_path / "w", limit=2
    )
    assert result.outcome == "nothing"
    outcomes = {a.vuln_id: (a.outcome, a.reason) for a in result.attempts}
    assert outcomes["CVE-2026-1111"][0] == "failed"
    assert outcomes["CVE-2026-1111"][1].startswith("repository unreachable: ")
    assert outcomes["CVE-2026-2"] == (
        "failed", f"{outcomes['CVE-2026-1111'][1]} (as for CVE-2026-1111, this pass)"
    )  # fmt: skip
    assert outcomes["CVE-2026-3"][0] == "skipped"
    assert outcomes["CVE-2026-3"][1].startswith("not in the vulnerability database")
    assert outcomes["CVE-2026-4"][0] == "failed"
    assert outcomes["CVE-2026-5"] == (
        "skipped",
        "over the cap of 2 CVEs researched per image and generation",
    )
    assert asked == ["libx", "liby"]  # one discovery per source


def test_a_not_affected_verdict_on_a_ranked_but_unnamed_commit_makes_no_statement(
    tmp_path: Path,
) -> None:
    """Without the engine: the same history, but the advisory is another id that no
    commit message or link names; the first candidate's code is not in the release,
    and that alone (a ranking) must not become a VEX statement."""
    researched = world(
        tmp_path, homepage="https://github.com/example/libx",
        tree=_tree(tmp_path / "tree", OLD), mirrors=upstream(tmp_path), version="1.0-3",
    )  # fmt: skip
    unnamed = "CVE-2026-3333"
    record = _record(CVE)
    assert record is not None
    researched.record = lambda cve: replace(record, cve=cve)
    seen = Observation("base", "g1", behind=False, unstable_cves=[f"libx {unnamed}"])
    result = research(ReconcileRequest("base"), seen, None, lambda _n: None, researched, tmp_path)
    assert result.outcome == "nothing"
    assert result.proposal is None
    ((vuln, outcome, reason),) = [(a.vuln_id, a.outcome, a.reason) for a in result.attempts]
    assert (vuln, outcome) == (unnamed, "skipped")
    assert reason.startswith("not affected by ")
    assert "no VEX statement on a ranking alone" in reason


def test_a_fix_that_does_not_apply_is_ported_onto_the_release_tag_as_the_cli_does(
    tmp_path: Path,
) -> None:
    """Without the engine: upstream changed a context line of the fix after 1.1, so the
    fix does not apply to the 1.1 release as is; the step ports it by a real 3-way merge
    onto the tag v1.1 (``check_tree``, as ``kiln research --backport``), and the build
    gets the port, with DEP-3 saying how it was made and the evidence saying why."""
    researched = world(
        tmp_path, homepage="https://github.com/example/libx",
        tree=_tree(tmp_path / "tree", VULNERABLE), mirrors=upstream(tmp_path, refactor=True),
    )  # fmt: skip
    built: list[Fix] = []

    def build(fix: Fix, work: Path, beat: Beat) -> Proposal:
        built.append(fix)
        return fake_build(fix, work, beat)

    researched.backport = build
    seen = Observation("base", "g1", behind=False, unfixed_cves=[f"libx {CVE}"])
    result = research(ReconcileRequest("base"), seen, None, lambda _n: None, researched, tmp_path)
    assert result.outcome == "proposed", result.reason
    (fix,) = built
    assert fix.ported_onto == "v1.1"
    diff = fix.diff.decode()
    assert "+    if (len >= NAME_MAX)" in diff
    assert "restrict" not in diff  # merged onto 1.1's own signature
    assert "Ported by kiln" in dict(fix.headers)["Description"]
    assert result.proposal is not None
    assert any(
        n.startswith("the fix did not apply as is (") and "onto v1.1" in n
        for n in result.proposal.notes
    )
    # the same fix with no tag for the release's version: the plain rejection stands
    untagged = dataclasses.replace(
        researched,
        packaging=lambda source: Packaging(
            source, "1.1.5-1", "t", homepage="https://github.com/example/libx"
        ),
    )
    built.clear()
    again = research(
        ReconcileRequest("base"), seen, None, lambda _n: None, untagged, tmp_path / "u"
    )
    assert again.outcome == "nothing"
    assert built == []
    ((outcome, reason),) = [(a.outcome, a.reason) for a in again.attempts]
    assert outcome == "failed"
    assert reason.startswith("PatchRejectedError: ")
