"""The finder's order after the model: code before docs/tests-only commits, the
commits naming the CVE id first, release commits last, a first-ranked regression test
giving its place to the fix committed beside it, a cherry-pick's original above its
copy.

Real git history (the conftest's demo upstream plus a release branch made with
``git cherry-pick -x``); the model's order is replaced by a deliberately wrong one
(newest first) so that each rule has something to correct.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kiln.errors import Location
from kiln.research.finder import (
    CandidateSet,
    Ranked,
    code_first,
    collect_candidates,
    cve_first,
    fix_beside_test_first,
    is_release_commit,
    originals_first,
    rank,
    releases_last,
    tag_window_first,
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
    # a branch name carries the id too (the same whole-id pattern as the mentions source)
    _empty_commit(work, "Merge branch 'fix-CVE-2023-0001'", "2023-07-19T00:00:00Z")
    cset = _collect(upstream, cve="CVE-2023-0001")
    ordered = cve_first(cset.advisory, _newest_first(cset))
    assert _subjects(ordered)[:2] == [
        "parse: refuse long input (CVE-2023-0001)",
        "Merge branch 'fix-CVE-2023-0001'",
    ]
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


def _commit_file(work: Path, path: str, text: str, message: str, date: str) -> str:
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git(work, "add", path)
    git(work, "commit", "-q", "-m", message, date=date)
    return git(work, "rev-parse", "HEAD")


def test_release_commits_rank_after_every_other_commit(upstream: Upstream) -> None:
    work = upstream.work
    # inside the v1.0..v1.1 window, just before the fixed release: what the date and
    # window features reward most
    bump = _commit_file(work, "VERSION", "1.1dev\n", "Demo 1.1dev", "2023-08-01T12:00:00Z")
    dep = _commit_file(
        work, "deps.txt", "zlib 1.2.13\n", "Bump zlib to 1.2.13", "2023-08-01T13:00:00Z"
    )
    cset = _collect(upstream)
    ranked = _newest_first(cset)
    shas = [r.commit.sha for r in ranked]
    assert shas.index(bump) < shas.index(upstream.fix)
    ordered = releases_last(ranked)
    moved = [r.commit.sha for r in ordered]
    assert moved[-1] == bump
    assert "a release or version bump" in ordered[-1].features.fired[0]
    # a dependency bump may be the fix: it keeps its place among the others
    assert moved.index(dep) == shas.index(dep)
    assert [s for s in moved if s != bump] == [s for s in shas if s != bump]
    assert [r.commit.sha for r in releases_last(ordered)] == moved


def test_what_counts_as_a_release_commit(upstream: Upstream) -> None:
    cset = _collect(upstream)
    commit = cset.commits[0]

    def release(message: str) -> bool:
        return is_release_commit(dataclasses.replace(commit, message=message))

    for message in (
        "Release v2.13.2",
        "release-1.34.4 (#940)",
        "Libarchive 3.7.5dev",
        "c-ares 1.16.1 release prep",
        "1.23.0 release prep (#641)",
        "Release prep for 1.34.8 (#1248)",
        "preparing release of 2.6.30 Daniel",
        "Bump up version number to 1.35.1",
        "version bump",
    ):
        assert release(message), message
    for message in (
        "Bump zlib to 1.2.13",  # a dependency: may be the fix
        "Bump golang.org/x/net from 0.15.0 to 0.17.0",
        "Release 1.2.4\n\nFix the overflow in parse() (CVE-2023-0001)",  # names a fix
        "parse: check the length before copying",
        "ngtcp2: use 0.15.0",
        "Release notes: describe the 1.1 changes",
    ):
        assert not release(message), message


def _test_ranked_first(upstream: Upstream, name: str, message: str, date: str) -> list[Ranked]:
    """Commit a tests-only change, then rank it first and the rest by nothing."""
    sha = _commit_file(
        upstream.work, f"tests/{name}.c", "int main(void) { return 0; }\n", message, date
    )
    return rank(_collect(upstream), lambda _f, c: 1.0 if c.sha == sha else 0.0)


def test_a_first_ranked_regression_test_gives_its_place_to_the_fix_beside_it(
    upstream: Upstream,
) -> None:
    # the regression test lands 40 minutes after the fix, in the same push
    ranked = _test_ranked_first(
        upstream, "test42", "test42: verify parse() with a long buffer", "2023-08-01T00:40:00Z"
    )
    test = ranked[0].commit.sha
    assert ranked[0].commit.subject.startswith("test42")
    ordered = fix_beside_test_first(ranked)
    assert [r.commit.sha for r in ordered[:2]] == [upstream.fix, test]
    assert f"beside {test[:10]}" in ordered[0].features.fired[0]
    # a code commit first: nothing moves
    assert fix_beside_test_first(ordered) == ordered
    # no code change within two hours of the test: nothing moves
    late = _test_ranked_first(
        upstream, "test43", "test43: another long buffer", "2023-08-05T00:00:00Z"
    )
    assert late[0].commit.subject.startswith("test43")
    assert fix_beside_test_first(late) == late


def test_inside_the_top_ten_the_tag_windows_commits_come_first(upstream: Upstream) -> None:
    # after v1.1 (the first fixed release): a follow-up sharing the fix's words
    late = _commit_file(
        upstream.work, "src/parse.h", "int parse(const char *buf, int len);\n",
        "parse: declare the length check's function", "2023-08-05T00:00:00Z",
    )  # fmt: skip
    cset = _collect(upstream)
    ranked = rank(cset, lambda _f, c: 1.0 if c.sha == late else 0.5 if c.sha == upstream.fix else 0)
    assert [r.commit.sha for r in ranked[:2]] == [late, upstream.fix]
    assert ranked[1].features.values["in_tag_window"] == 1.0
    assert ranked[0].features.values["in_tag_window"] == 0.0
    ordered = tag_window_first(ranked)
    assert ordered[0].commit.sha == upstream.fix
    # the follow-up goes after the top ten's commits of the v1.0..v1.1 window (the fix
    # and the five readme rewordings), before the rest
    inside = sum(1 for r in ranked[:10] if r.features.values["in_tag_window"])
    assert inside == 6
    assert [r.commit.sha for r in ordered].index(late) == inside
    assert "outside the affected..fixed tag window" in ordered[inside].features.fired[0]
    # only the first ``top`` are reordered: nothing enters or leaves them
    assert tag_window_first(ranked, top=1) == ranked
    shas = {r.commit.sha for r in ranked[:3]}
    assert {r.commit.sha for r in tag_window_first(ranked, top=3)[:3]} == shas
    assert [r.commit.sha for r in tag_window_first(ranked, top=3)[3:]] == [
        r.commit.sha for r in ranked[3:]
    ]


def test_patch_id_ignores_line_numbers_context_and_whitespace() -> None:
    from kiln.research.finder import patch_id

    main = (
        "--- a/src/p.c\n+++ b/src/p.c\n@@ -2,0 +3,2 @@\n+    if (len > 16)\n+        return -1;\n"
    )
    branch = (
        "--- a/src/p.c\n+++ b/src/p.c\n@@ -40,0 +41,2 @@ int f()\n"
        "+\tif (len > 16)\n+\t\treturn -1;\n"
    )
    other = main.replace("16", "32")
    elsewhere = main.replace("src/p.c", "src/q.c")
    assert patch_id(main) == patch_id(branch)
    assert patch_id(main) != patch_id(other)
    assert patch_id(main) != patch_id(elsewhere)
    assert patch_id("--- a/x\n+++ b/x\n") is None  # no changed line: no id


def test_a_second_copy_of_a_change_leaves_the_first_ten(upstream: Upstream) -> None:
    """The fix cherry-picked (without -x, so no message cites it) onto two release
    branches whose file has moved lines: the same change three times; the highest copy
    keeps its place, the others go just after the first 10."""
    from kiln.research.finder import SIBLINGS_TOP, diff_reader, siblings_after

    work = upstream.work
    copies = []
    for n, branch in enumerate(("release-1.0", "release-0.9")):
        git(work, "checkout", "-q", "-b", branch, "v1.0")
        parse = work / "src" / "parse.c"
        parse.write_text("/* header */\n" * (n + 1) + parse.read_text())
        git(work, "commit", "-q", "-am", f"{branch}: a header", date="2023-08-10T00:00:00Z")
        git(work, "cherry-pick", upstream.fix, date=f"2023-08-2{n}T00:00:00Z")
        copies.append(git(work, "rev-parse", "HEAD"))
    git(work, "checkout", "-q", "main")
    for i in range(12):
        _empty_commit(work, f"misc: tidy ({i})", f"2023-08-{i + 3:02d}T00:00:00Z")
    cset = _collect(upstream)
    ranked = _newest_first(cset)
    shas = [r.commit.sha for r in ranked]
    assert shas.index(copies[1]) < shas.index(copies[0]) < SIBLINGS_TOP  # newest first
    with open_repo(work) as repo:
        ordered = siblings_after(ranked, diff_reader(repo))
    moved = [r.commit.sha for r in ordered]
    # the highest copy (the newest branch's) stays; the other leaves the first 10 and
    # follows them; the main-line fix, below the first 10 already, stays where it was
    assert moved.index(copies[1]) == shas.index(copies[1])
    assert moved[SIBLINGS_TOP] == copies[0]
    assert shas.index(upstream.fix) > SIBLINGS_TOP
    assert moved.index(upstream.fix) == shas.index(upstream.fix)
    assert f"the same change as {copies[1][:10]}" in ordered[SIBLINGS_TOP].features.fired[0]
    assert moved[:SIBLINGS_TOP] == [s for s in shas if s != copies[0]][:SIBLINGS_TOP]
    assert len(moved) == len(shas)
    assert sorted(moved) == sorted(shas)
    # nothing to move when every change is distinct
    with open_repo(work) as repo:
        distinct = [r for r in ranked if r.commit.sha not in (copies[0], upstream.fix)]
        assert siblings_after(distinct, diff_reader(repo)) == distinct
