"""The real research step (``CatalogSteps.research``) on the real archive.

jq's CVE-2025-49014 (introduced upstream in 1.8, trixie has 1.7.1): everything is real
except where the CVE comes from. The observation names it for the catalog's base image
(jq is not in base: the step does not need it to be; the statement's product is then
the image itself), and kiln's database gets its text from the real NVD record as
fixbench keeps it (``kiln db update --source nvd --from FILE``; NVD is not reachable
here). Then: trixie's jq packaging through the signed Sources index, discovery
(``debian/upstream/metadata`` → GitHub), fixbench's real jq clone as the mirror
(``KILN_RESEARCH_MIRRORS``), the shipped ranker, trixie's jq source fetched and unpacked
by dpkg-source in the sandbox, the verdict, the vex proposal. Without the mirror the
same run is the normal case on this machine: GitHub does not resolve.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.factory.catalog import CatalogSteps
from kiln.factory.model import Observation, ReconcileRequest

from .fakesteps import catalog_repo
from .test_vex_archive import base_files

CVE = "CVE-2025-49014"
FIXBENCH = Path(__file__).resolve().parents[3] / "shared" / "fixbench"


def _nvd_file(path: Path) -> Path:
    """fixbench's record of the CVE (NVD's description) as an NVD API 2.0 answer."""
    lines = (FIXBENCH / "cves.jsonl").read_text().splitlines()
    record = next(json.loads(line) for line in lines if f'"{CVE}"' in line)
    cve = {
        "id": CVE,
        "published": record["published"],
        "lastModified": record["published"],
        "vulnStatus": "Analyzed",
        "descriptions": [{"lang": "en", "value": record["description"]}],
        "weaknesses": [
            {"source": "nvd", "type": "Primary",
             "description": [{"lang": "en", "value": c} for c in record.get("cwe", [])]},
        ],
        "references": [],
    }  # fmt: skip
    page = {"resultsPerPage": 1, "startIndex": 0, "totalResults": 1, "format": "NVD_CVE"}
    answer = {"version": "2.0", "timestamp": "2026-12-07T11:00:00.000"}
    path.write_text(json.dumps({**page, **answer, "vulnerabilities": [{"cve": cve}]}))
    return path


@pytest.mark.network
def test_the_real_research_step_states_jq_not_affected_and_without_mirror_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (FIXBENCH / "repos" / "jq.git").is_dir():
        pytest.skip("fixbench's jq clone is not on this machine")
    db = tmp_path / "vuln.db"
    nvd = _nvd_file(tmp_path / "nvd.json")
    assert main(["db", "update", "--source", "nvd", "--from", str(nvd), "--db", str(db)]) == 0
    steps = CatalogSteps(catalog_repo(tmp_path / "catalog", base_files()), db_url=f"sqlite:///{db}")
    seen = Observation("base", "b" * 64, behind=False, unstable_cves=[f"jq {CVE}"])

    monkeypatch.setenv("KILN_RESEARCH_MIRRORS", str(FIXBENCH / "repos"))
    notes: list[str] = []
    result = steps.research(ReconcileRequest("base"), seen, None, notes.append)
    assert result.outcome == "proposed", result.reason
    proposal = result.proposal
    assert proposal is not None
    assert (proposal.kind, proposal.title) == ("vex", f"base: VEX not_affected for {CVE}")
    document = json.loads(proposal.decoded()["vex/base.openvex.json"] or b"")
    (statement,) = document["statements"]
    assert statement["justification"] == "vulnerable_code_not_present"
    assert "src/builtin.c @@ " in statement["impact_statement"]
    assert "jq 1.7.1-" in statement["impact_statement"]
    assert any(n.startswith(f"{CVE}: candidate 1: 499c91bca9d4 ") for n in proposal.notes)
    assert {d.image for d in proposal.determinations} == {"base", "base-dev"}
    assert any(n.startswith(f"research {CVE}: is jq 1.7.1-") for n in notes)

    monkeypatch.delenv("KILN_RESEARCH_MIRRORS")
    result = steps.research(ReconcileRequest("base"), seen, None, notes.append)
    assert result.outcome == "nothing"
    ((vuln, outcome, reason),) = [(a.vuln_id, a.outcome, a.reason) for a in result.attempts]
    assert (vuln, outcome) == (CVE, "failed")
    assert reason.startswith("repository unreachable: no upstream repository of jq could be")
    assert "https://github.com/jqlang/jq.git" in reason
