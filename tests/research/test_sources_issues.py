"""``IssueMentions``: commits citing an issue or pull request of the project that the
advisory links (``Fixes #958``, ``(#1961)``, GitLab's ``!42``), anywhere in the
history, become candidates even outside every window.

Real git history (the conftest's demo upstream, a repository named ``upstream``) with
commits made years after the publication, where neither window reaches.
"""

from __future__ import annotations

import pytest

from kiln.errors import Location
from kiln.research.features import Advisory
from kiln.research.finder import collect_candidates
from kiln.research.gitrepo import open_repo
from kiln.research.record import record_from_json
from kiln.research.sources import IssueMentions, own_issue_numbers
from research.conftest import Upstream, git_log_times_out, late_commit, proposed, record_json

OWN = "https://gitlab.example.invalid/group/upstream/-/issues/958"


def _issues(upstream: Upstream, refs: list[str]) -> list[str]:
    return proposed(IssueMentions(), upstream, references_without_commits=refs)


def test_a_late_commit_citing_the_projects_linked_issue_is_a_candidate(
    upstream: Upstream,
) -> None:
    fixes = late_commit(upstream, "late.c", "parse: stop the recursion\n\nFixes #958.")
    squash = late_commit(upstream, "squash.c", "catalog: bound depth (#958)")
    url = late_commit(upstream, "url.c", f"see {OWN}#note_1 for the report")
    longer = late_commit(upstream, "longer.c", "unrelated (#9580)")
    html = late_commit(upstream, "html.c", "escape &#958; in output")
    found = _issues(upstream, [OWN])
    assert sorted(found) == sorted([fixes, squash, url])
    assert longer not in found
    assert html not in found
    record = record_from_json(record_json(references_without_commits=[OWN]), Location("t")).record
    with open_repo(upstream.work) as repo:
        cset = collect_candidates(record, repo)
    shas = [c.sha for c in cset.commits]
    assert cset.sources[shas.index(fixes)] == ("issues",)
    assert cset.features[shas.index(fixes)].values["xref_issue"] == 1.0
    assert cset.sources[shas.index(upstream.fix)] == ("git",)  # the window still stands


def test_another_projects_issue_and_a_one_digit_number_are_not_searched(
    upstream: Upstream,
) -> None:
    late_commit(upstream, "late.c", "parse: fix (#958) and #7")
    other = "https://github.com/someone/otherproject/issues/958"
    assert _issues(upstream, [other]) == []
    assert _issues(upstream, ["https://github.com/o/upstream/issues/7"]) == []
    record = record_from_json(
        record_json(
            references_without_commits=[
                other,
                "https://github.com/o/upstream/pull/1961",
                "https://github.com/o/upstream.git/issues/12?x=1",
                "https://github.com/o/upstream/pull/1961/files",
                "https://github.com/o/upstream/issues/958abc",
            ]
        ),
        Location("t"),
    ).record
    assert own_issue_numbers(Advisory.of(record), "upstream") == ["1961", "12"]


def test_a_search_past_gits_timeout_proposes_nothing_and_fails_nothing(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    late_commit(upstream, "late.c", "parse: fix #958")
    git_log_times_out(monkeypatch)
    assert _issues(upstream, [OWN]) == []
