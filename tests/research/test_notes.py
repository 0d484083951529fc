"""The project's release notes naming the CVE name its fix (``kiln.research.notes``).

Real git history (the conftest's demo upstream: the fix "parse: check the length before
copying", closing #42, between v1.0 and v1.1) with NEWS files written the ways projects
write them: libxml2's ``- [CVE-…] subject``, jq's entry with the commit's hash, expat's
pull-request numbers with indented continuation lines, and notes kept only at a
release's tag (rewritten for each release).
"""

from __future__ import annotations

import pytest

from kiln.errors import Location
from kiln.research import notes
from kiln.research.finder import CandidateSet, Ranked, collect_candidates, notes_first, rank
from kiln.research.gitrepo import Commit, open_repo
from kiln.research.notes import NoteEntry, note_entries
from kiln.research.record import record_from_json
from research.conftest import Upstream, git, record_json

CVE = "CVE-2023-0001"
FIX_SUBJECT = "parse: check the length before copying"


def _write_news(upstream: Upstream, text: str, *, path: str = "NEWS") -> None:
    (upstream.work / path).write_text(text)
    git(upstream.work, "add", path)
    git(upstream.work, "commit", "-q", "-m", "news for 1.1", date="2023-08-02T00:00:00Z")


def _collect(upstream: Upstream) -> CandidateSet:
    record = record_from_json(record_json(), Location("t")).record
    with open_repo(upstream.work) as repo:
        return collect_candidates(record, repo)


def _newest_first(cset: CandidateSet) -> list[Ranked]:
    return rank(cset, lambda _f, c: float(c.time))


def test_an_entry_with_the_fix_subject_puts_the_fix_first(upstream: Upstream) -> None:
    _write_news(
        upstream,
        "v1.1\n\n### Security\n\n"
        f"- [{CVE}] {FIX_SUBJECT}\n"
        "- docs: reword the readme (3)\n"  # the next entry, about another change
        f"- [CVE-2023-00012] docs: reword the readme (4)\n",  # another CVE's
    )
    cset = _collect(upstream)
    (entry,) = cset.advisory.release_notes
    assert (entry.rev, entry.path, entry.line) == ("HEAD", "NEWS", 5)
    assert entry.text == f"- [{CVE}] {FIX_SUBJECT}"
    ranked = _newest_first(cset)
    assert ranked[0].commit.sha != upstream.fix  # newer commits come first by date
    ordered = notes_first(cset.advisory, ranked)
    assert ordered[0].commit.sha == upstream.fix
    assert ordered[0].features.fired[0] == (
        f"the release notes (NEWS:5 at HEAD) on {CVE} name it by its subject: ranked ahead"
    )
    # nothing else moved: the readme commits are named by no entry of this CVE
    assert [r.commit.sha for r in ordered[1:]] == [
        r.commit.sha for r in ranked if r.commit.sha != upstream.fix
    ]


def test_an_entry_names_the_fix_by_its_hash_or_its_pull_request(upstream: Upstream) -> None:
    _write_news(
        upstream,
        f"- {CVE}: Fix a stack overflow in parse(). @someone {upstream.fix[:10]}\n"
        "\n"
        "Security fixes:\n"
        f"       #42 #57  {CVE} -- Fix a stack buffer overflow\n"
        "                   in function parse for long input.\n"
        "       #60  Other: a change that is not this CVE's\n",
        path="notes.txt",  # no release-notes name: not read
    )
    assert _collect(upstream).advisory.release_notes == ()
    git(upstream.work, "mv", "notes.txt", "Changes")  # expat's name
    git(upstream.work, "commit", "-q", "-m", "rename", date="2023-08-03T00:00:00Z")
    first, second = _collect(upstream).advisory.release_notes
    fix = _commit(upstream, upstream.fix)
    assert first.names(fix) == f"its hash {upstream.fix[:10]}"
    assert second.text == (
        f"#42 #57  {CVE} -- Fix a stack buffer overflow in function parse for long input."
    )
    assert second.names(fix) == "#42, which its message cites"
    noise = _commit(upstream, upstream.noise[0])
    assert first.names(noise) is None
    assert second.names(noise) is None


def _commit(upstream: Upstream, sha: str) -> Commit:
    with open_repo(upstream.work) as repo:
        (commit,) = repo.log([sha, "-1"])
    return commit


def test_short_subjects_and_hex_words_name_nothing() -> None:
    entry = NoteEntry("HEAD", "NEWS", 1, f"- {CVE}: fix typo; added a check, see #7")
    typo = Commit("a" * 40, 0, 0, "fix typo\n\nsee #7", ("a.c",), 1, 0, 0)
    assert entry.names(typo) is None  # two words, and #7 has one digit: too little
    added = Commit("added" + "0" * 35, 0, 0, "x", ("a.c",), 1, 0, 0)
    assert entry.names(added) is None  # "added" is hex but no hash: it has no digit


def test_notes_kept_only_at_the_fixed_tag_are_read_there(upstream: Upstream) -> None:
    # curl-like: the release notes are rewritten for each release, so only the tag of
    # the fixed version has this one's
    work = upstream.work
    git(work, "checkout", "-q", "-b", "notes", "v1.1")
    _write_news(upstream, f"o {CVE}: {FIX_SUBJECT} [12]\n", path="RELEASE-NOTES")
    git(work, "tag", "-f", "v1.1")
    git(work, "checkout", "-q", "main")
    git(work, "branch", "-q", "-D", "notes")
    (entry,) = _collect(upstream).advisory.release_notes
    assert (entry.rev, entry.path) == ("v1.1", "RELEASE-NOTES")


def test_a_failing_or_overlong_grep_gives_no_entries(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_news(upstream, f"- [{CVE}] {FIX_SUBJECT}\n" * 3)
    with open_repo(upstream.work) as repo:
        assert len(note_entries(repo, [CVE], ["HEAD"])) == 1  # the same entry once
        assert note_entries(repo, [CVE], ["no-such-tag"]) == ()  # git fails: nothing
        assert note_entries(repo, [CVE], ["--output=/tmp/x"]) == ()  # never an option
        assert note_entries(repo, [], ["HEAD"]) == ()
        monkeypatch.setattr(notes, "MAX_GREP_BYTES", 10)
        assert note_entries(repo, [CVE], ["HEAD"]) == ()


def test_a_repository_without_notes_changes_no_order(upstream: Upstream) -> None:
    cset = _collect(upstream)
    assert cset.advisory.release_notes == ()
    ranked = _newest_first(cset)
    assert notes_first(cset.advisory, ranked) == ranked


def test_a_commit_the_notes_name_by_hash_is_a_candidate_outside_every_window(
    upstream: Upstream,
) -> None:
    work = upstream.work
    (work / "src" / "late.c").write_text("int late(void) { return 1; }\n")
    git(work, "add", "src")
    git(work, "commit", "-q", "-m", "late: harden the parser", date="2027-03-01T00:00:00Z")
    late = git(work, "rev-parse", "HEAD")
    _write_news(upstream, f"- {CVE}: harden the parser further. {late[:12]} deadbeef00\n")
    cset = _collect(upstream)
    shas = [c.sha for c in cset.commits]
    assert cset.sources[shas.index(late)] == ("notes",)  # years past the date window
    assert cset.sources[shas.index(upstream.fix)] == ("git", "issues")  # not "notes"
