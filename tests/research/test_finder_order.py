"""The finder's order after the model: code before docs/tests-only commits, the
commits naming the CVE id first, a cherry-pick's original above its copy.

Real git history (the conftest's demo upstream plus a release branch made with
``git cherry-pick -x``); the model's order is replaced by a deliberately wrong one
(newest first) so that each rule has something to correct.
"""

from __future__ import annotations

from pathlib import Path

from kiln.errors import Location
from kiln.research.finder import (
    CandidateSet,
    Ranked,
    code_first,
    collect_candidates,
    cve_first,
    originals_first,
    rank,
)
from kiln.research.gitrepo import open_repo
from kiln.research.record import record_from_json
from research.conftest import Upstream, git, record_json


def _newest_first(cset: CandidateSet) -> list[Ranked]:
    return rank(cset, lambda _f, c: float(c.time))


def _collect(upstream: Upstream, **fields: object) -> CandidateSet:
    record = record_from_json(record_json(**fields), Location("t")).record
    with open_repo(upstream.work) as repo:
        return collect_candidates(record, repo)


def _subjects(ranked: list[Ranked]) -> list[str]:
    return [r.commit.subject for r in ranked]


def test_code_changes_rank_before_docs_and_tests_only_commits(upstream: Upstream) -> None:
    work = upstream.work
    (work / "tests").mkdir()
    (work / "tests" / "overflow.c").write_text('int main(void) { return parse("x", 99); }\n')
    git(work, "add", "tests")
    git(work, "commit", "-q", "-m", "tests: a long buffer in parse()", date="2023-08-03T00:00:00Z")
    cset = _collect(upstream)
    ranked = code_first(_newest_first(cset))
    subjects = _subjects(ranked)
    fix = subjects.index("parse: check the length before copying")
    # newest first put the test and the README rewording above the fix; now every
    # commit that changes code is above every docs/tests-only one, each group in order
    assert subjects.index("tests: a long buffer in parse()") > fix
    assert all(subjects.index(f"docs: reword the readme ({i})") > fix for i in range(5))
    assert subjects[:2] == ["add a logo", "parse: check the length before copying"]
    moved = ranked[subjects.index("tests: a long buffer in parse()")]
    assert "changes only docs/tests" in moved.features.fired[0]
    # nothing to reorder when every candidate is docs-only or every one is code
    docs_only = [r for r in ranked if r.features.values.get("only_docs")]
    assert code_first(docs_only) == docs_only


def _empty_commit(work: Path, message: str, date: str) -> None:
    git(work, "commit", "-q", "--allow-empty", "-m", message, date=date)


def test_commits_naming_the_cve_rank_first(upstream: Upstream) -> None:
    work = upstream.work
    (work / "src" / "util.c").write_text("int util(void) { return 0; }\n")
    git(work, "add", "src/util.c")
    git(work, "commit", "-q", "-m", "util: a helper", date="2023-08-04T00:00:00Z")
    # a longer id that starts with this one's is another CVE
    _empty_commit(work, "util: CVE-2023-00012 too", "2023-08-05T00:00:00Z")
    cset = _collect(upstream, cve="CVE-2023-0001")
    ranked = _newest_first(cset)
    assert _subjects(cve_first(cset.advisory, ranked)) == _subjects(ranked)  # none names it
    _empty_commit(work, "parse: refuse long input (CVE-2023-0001)", "2023-07-20T00:00:00Z")
    cset = _collect(upstream, cve="CVE-2023-0001")
    ordered = cve_first(cset.advisory, _newest_first(cset))
    assert ordered[0].commit.subject == "parse: refuse long input (CVE-2023-0001)"
    assert "names CVE-2023-0001" in ordered[0].features.fired[0]
    # another CVE's id is not this one's
    other = _collect(upstream, cve="CVE-2023-0002")
    assert _subjects(cve_first(other.advisory, _newest_first(other))) == _subjects(
        _newest_first(other)
    )


def test_a_cherry_picks_original_moves_above_its_copy(upstream: Upstream) -> None:
    work = upstream.work
    git(work, "checkout", "-q", "-b", "release-1.0", "v1.0")
    git(work, "cherry-pick", "-x", upstream.fix, date="2023-08-20T00:00:00Z")
    copy = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "main")
    git(work, "revert", "--no-edit", upstream.noise[4], date="2023-08-21T00:00:00Z")
    cset = _collect(upstream)
    ranked = _newest_first(cset)
    shas = [r.commit.sha for r in ranked]
    assert shas.index(copy) < shas.index(upstream.fix)  # the copy is newer
    where_copy_was = shas.index(copy)
    ordered = originals_first(ranked)
    moved = [r.commit.sha for r in ordered]
    # the original takes the copy's place, the copy follows it
    assert moved.index(upstream.fix) == where_copy_was
    assert moved.index(copy) == where_copy_was + 1
    why = ordered[where_copy_was].features.fired[0]
    assert f"{copy[:10]} was cherry-picked from it" in why
    # "This reverts commit X" does not make X an original: the reverted commit stays
    assert moved.index(upstream.noise[4]) == shas.index(upstream.noise[4])
    # already above its copy: nothing moves
    assert originals_first(ordered) == ordered
