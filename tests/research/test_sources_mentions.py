"""``MessageMentions``: commits naming the advisory's CVE or GHSA id, anywhere in the
history, become candidates even outside every window.

Real git history (the conftest's demo upstream) with commits made years after the
publication, where neither the tag window nor the date window reaches.
"""

from __future__ import annotations

import pytest

from kiln.errors import Location
from kiln.research.finder import collect_candidates
from kiln.research.gitrepo import open_repo
from kiln.research.record import record_from_json
from kiln.research.sources import MessageMentions
from research.conftest import Upstream, git_log_times_out, late_commit, proposed, record_json


def _mentions(upstream: Upstream, **fields: object) -> list[str]:
    return proposed(MessageMentions(), upstream, **fields)


def test_a_late_commit_naming_the_cve_is_a_candidate(upstream: Upstream) -> None:
    late = late_commit(upstream, "late.c", "parse: harden further (cve-2023-0001)")
    other = late_commit(upstream, "other.c", "util: fix CVE-2023-00012, a different one")
    prefix = late_commit(upstream, "prefix.c", "notes on XCVE-2023-0001 and CVE-2023-0001x")
    assert _mentions(upstream) == [late]  # the whole id, any case; not a longer id
    record = record_from_json(record_json(), Location("t")).record
    with open_repo(upstream.work) as repo:
        cset = collect_candidates(record, repo)
    shas = [c.sha for c in cset.commits]
    assert late in shas
    assert other not in shas
    assert prefix not in shas
    assert cset.sources[shas.index(late)] == ("mentions",)
    # the tag window's fix is still there, proposed by the window (and, for its
    # "Closes #42" that the record links, by the issues source), not by this one
    assert cset.sources[shas.index(upstream.fix)] == ("git", "issues")
    late_features = cset.features[shas.index(late)]
    assert late_features.values["cve_in_message"] == 1.0


def test_a_ghsa_id_in_the_references_is_searched_too(upstream: Upstream) -> None:
    ghsa = "GHSA-abcd-1234-wxyz"
    late = late_commit(upstream, "late.c", f"Merge the fix for {ghsa.lower()}")
    refs = [f"https://github.com/advisories/{ghsa}"]
    assert _mentions(upstream, cve="CVE-2099-0002", references_without_commits=refs) == [late]


def test_an_id_that_is_no_id_is_never_handed_to_git(upstream: Upstream) -> None:
    # a record's id is checked before it reaches git's command line; nothing matches
    late_commit(upstream, "late.c", "mention --all and CVE-2023-1")
    assert _mentions(upstream, cve="CVE-2023-1") == []


def test_a_search_past_gits_timeout_proposes_nothing_and_fails_nothing(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    late_commit(upstream, "late.c", "parse: harden further (CVE-2023-0001)")
    git_log_times_out(monkeypatch)
    assert _mentions(upstream) == []


def test_one_whole_id_pattern_for_the_mentions_source_and_the_finders_order() -> None:
    """``whole_ids`` is what both read messages with (``cve_first`` and this source):
    no letter or digit may touch the id, anything else may."""
    from kiln.research.record import whole_ids

    whole = whole_ids(["CVE-2023-0001", "GHSA-abcd-1234-wxyz"])
    named = [
        "parse: fix cve-2023-0001",
        "Merge branch 'fix-CVE-2023-0001'",
        "add debian/patches/CVE-2023-0001_1.patch",
        "see https://example.invalid/CVE-2023-0001.html",
        "Fixes GHSA-ABCD-1234-WXYZ.",
    ]
    not_named = [
        "CVE-2023-00012",
        "XCVE-2023-0001",
        "CVE-2023-0001a",
        "GHSA-abcd-1234-wxyz9",
        "CVE-2023-000",
    ]
    assert [m for m in named if not whole.search(m)] == []
    assert [m for m in not_named if whole.search(m)] == []
