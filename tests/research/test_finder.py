"""Ranking real history: a synthetic upstream, and real CVEs of the development set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kiln.errors import Location
from kiln.research.finder import find_fix_commits
from kiln.research.gitrepo import open_repo
from kiln.research.rank import load_model
from kiln.research.record import record_from_json
from research.conftest import FIXBENCH, Upstream, record_json


def test_the_fix_of_the_referenced_issue_ranks_first(upstream: Upstream) -> None:
    record = record_from_json(record_json(), Location("t")).record
    with open_repo(upstream.work) as repo:
        ranking = find_fix_commits(record, repo, load_model())
    assert ranking.kiln[0].commit.sha == upstream.fix
    assert ranking.baseline[0].commit.sha == upstream.fix
    top = ranking.kiln[0]
    assert "XREF_GH" in top.rules  # Closes #42 and the advisory's issues/42
    assert any("between last affected and first fixed tag" in f for f in top.features.fired)
    assert ranking.candidates == 8  # every non-merge commit in the windows, once


def test_without_references_the_window_and_text_still_find_it(upstream: Upstream) -> None:
    record = record_from_json(
        record_json(references_without_commits=[], cwe=[]), Location("t")
    ).record
    with open_repo(upstream.work) as repo:
        ranking = find_fix_commits(record, repo, load_model())
    assert ranking.kiln[0].commit.sha == upstream.fix
    assert "XREF_GH" not in ranking.kiln[0].rules


def _bench(cve: str) -> dict[str, Any]:
    for line in (FIXBENCH / "cves.jsonl").read_text().splitlines():
        data: dict[str, Any] = json.loads(line)
        if data["cve"] == cve:
            return data
    raise AssertionError(cve)


@pytest.mark.skipif(not (FIXBENCH / "cves.jsonl").exists(), reason="fixbench is not here")
@pytest.mark.parametrize(
    "cve",
    # fix messages that do not name the CVE (records without leak flags)
    ["CVE-2025-49014", "CVE-2024-23337", "CVE-2021-33503"],
)
def test_real_cves_rank_their_fix_in_the_top_ten(cve: str) -> None:
    data = _bench(cve)
    record = record_from_json(data, Location("cves.jsonl")).record
    fixes = set(data["fix_commits"])  # the answer: read by the test, never by the finder
    name = str(data["repo"]).rsplit("/", 1)[-1]
    with open_repo(FIXBENCH / "repos" / f"{name}.git") as repo:
        ranking = find_fix_commits(record, repo, load_model())
    top10 = [r.commit.sha for r in ranking.kiln[:10]]
    assert fixes & set(top10), (cve, top10)
    assert ranking.seconds < 30
