"""Bug numbers taken from an advisory's references (issue #17, third-round failure
analysis): a CVE id's year and number, and a mailing-list archive's date, are not bug
numbers, so a commit naming another CVE of the same year does not "cite the bug"."""

from __future__ import annotations

from kiln.errors import Location
from kiln.research.features import Advisory, extract
from kiln.research.gitrepo import Commit
from kiln.research.record import record_from_json
from research.conftest import record_json


def _commit(message: str) -> Commit:
    return Commit("a" * 40, 1_700_000_000, 1_700_000_000, message, ("lib/x.c",), 1, 1, 0)


def test_cve_ids_and_archive_dates_in_references_are_not_bug_numbers() -> None:
    refs = [
        "https://project.example/docs/CVE-2021-22922.html",
        "https://lists.example/oss-security/2021/07/21/1",
        "https://reports.example/reports/1213175",
        "https://bugs.example/show_bug.cgi?id=4711",
    ]
    record = record_from_json(
        record_json(cve="CVE-2021-22922", references_without_commits=refs), Location("r")
    ).record
    advisory = Advisory.of(record)
    assert advisory.bug_numbers == {"1213175", "4711"}
    other_cve, cited = extract(
        advisory,
        [_commit("tls: fix CVE-2021-22876 in 2021"), _commit("parse: bound the length (bug 4711)")],
        [False, False],
    )
    assert other_cve.values["xref_bug"] == 0.0
    assert cited.values["xref_bug"] == 1.0
    assert "bug 4711 cited" in cited.fired
