"""Candidate recall (issue #17): a fix made on the main line and backported to a
maintenance release must be a candidate, in a real git repository built with git."""

from __future__ import annotations

from pathlib import Path

from kiln.errors import Location
from kiln.research.finder import collect_candidates
from kiln.research.gitrepo import open_repo
from kiln.research.record import record_from_json
from kiln.research.versions import TagIndex, advisory_bounds, tag_windows
from research.conftest import git, record_json


def _tags(*names: str) -> TagIndex:
    return TagIndex.build(dict.fromkeys(names, ("0" * 40, 0)))


def test_next_series_is_the_first_release_after_a_maintenance_line() -> None:
    index = _tags("1.24", "1.24.1", "1.24.2", "1.24.3", "1.25", "1.25.1", "2.0")
    assert index.next_series("1.24.2") == "1.25"
    assert index.next_series("1.25.1") is None  # 2.0 is another major version
    assert index.next_series("1.25") is None  # not a maintenance version
    assert index.next_series("2.0.1") is None  # nothing after it
    foreign = _tags("v1.34.4", "v1.34.5", "curl-7_14_0", "v2.0.0")
    assert foreign.next_series("1.34.5") is None  # another project's tag, another major
    rec = record_from_json(
        record_json(description="x before 1.24.2", cpe_version_ranges=[]), Location("x")
    ).record
    windows = tag_windows(advisory_bounds(rec), index)
    assert ["1.24.2", "^1.24.1"] in windows
    assert ["1.25", "^1.24.1"] in windows


def _commit(work: Path, path: str, text: str, message: str, date: str) -> str:
    target = work / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(work, "add", path, date=date)
    git(work, "commit", "-q", "-m", message, date=date)
    return git(work, "rev-parse", "HEAD")


def test_a_main_line_fix_behind_a_backport_release_is_a_candidate(tmp_path: Path) -> None:
    work = tmp_path / "up"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    _commit(
        work, "src/redirect.py", "def follow(h):\n    return h\n", "start", "2018-01-01T00:00:00Z"
    )
    git(work, "tag", "1.24.1")
    fix = _commit(
        work,
        "src/redirect.py",
        "def follow(h):\n    h.pop('Authorization', None)\n    return h\n",
        "Drop Authorization on cross-host redirect",
        "2018-12-30T00:00:00Z",
    )
    git(work, "checkout", "-q", "-b", "1.24.x", "1.24.1")
    git(work, "cherry-pick", "-x", fix, date="2019-04-01T00:00:00Z")
    git(work, "tag", "1.24.2")
    git(work, "checkout", "-q", "main")
    _commit(work, "README", "later\n", "unrelated", "2019-04-20T00:00:00Z")
    git(work, "tag", "1.25")
    # published years later: the date window alone misses both commits
    rec = record_from_json(
        record_json(
            description="demo before 1.24.2 keeps the Authorization header on redirect.",
            published="2023-10-15T00:00:00",
            cpe_version_ranges=[],
        ),
        Location("x"),
    ).record
    with open_repo(work / ".git") as repo:
        shas = {c.sha for c in collect_candidates(rec, repo).commits}
    assert fix in shas
