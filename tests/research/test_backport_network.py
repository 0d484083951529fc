"""``kiln research CVE --backport`` on the real archive (issue #17, "end to end").

Real components only: the fixbench clone of libarchive, the shipped ranker, the
configured Debian mirror (signed Sources, trixie's packaging and source tarballs) and
D's ``backport_patch`` with its apply check. CVE-2025-5914 was the planned case (open in
trixie when E checked the upstream tags), but trixie's libarchive 3.7.4-4+deb13u1 now
carries Debian's own fix: the research agent must find the commit, then refuse the
backport saying where trixie fixes it, and the upstream patch must be reported as
previously applied with nothing written. The CVE text is the fixbench record's INPUT
fields only. Takes about 30 s (one source download, two rankings).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.pipeline.backport import PatchRejectedError, backport_patch, release_status
from research.conftest import FIXBENCH

CVE = "CVE-2025-5914"
FIX = "09685126fcec664e2b8ca595e1fc371bd494d209"  # rar: Fix double free (#2598)
INPUT_FIELDS = (
    "cve", "repo", "published", "description", "description_source", "cwe",
    "cvss3_base_score", "cpe_version_ranges", "affected_versions_cna",
    "references_without_commits",
)  # fmt: skip


def _input_record(tmp_path: Path, cve: str) -> Path:
    for line in (FIXBENCH / "cves.jsonl").read_text().splitlines():
        full = json.loads(line)
        if full["cve"] == cve:
            path = tmp_path / f"{cve}.json"
            path.write_text(json.dumps({k: full[k] for k in INPUT_FIELDS if k in full}))
            return path
    raise AssertionError(f"{cve} is not in fixbench")


@pytest.mark.network
@pytest.mark.slow
def test_backport_of_a_cve_trixie_already_fixes_is_refused_with_where_and_conflicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = FIXBENCH / "repos" / "libarchive.git"
    if not repo.exists():
        pytest.skip("fixbench is not here")
    catalog = tmp_path / "catalog"
    (catalog / "recipes").mkdir(parents=True)
    (catalog / "images").mkdir()
    record = _input_record(tmp_path, CVE)
    patch = tmp_path / "fix.patch"

    code = main(
        ["research", CVE, "--repo", str(repo), "--record", str(record), "--top", "3",
         "--patch", str(patch), "--package", "libarchive", "--backport",
         "--catalog", str(catalog), "--work", str(tmp_path / "work")]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert f" 1. {FIX[:12]}" in captured.out  # the finder ranks the upstream fix first
    assert code == 1, captured.err  # PolicyError: nothing to backport
    status = release_status("libarchive", CVE)
    assert status.fixed
    assert f"libarchive {status.version} (trixie) already fixes {CVE}" in captured.err
    assert f"debian/patches/{CVE}.patch" in captured.err
    assert list((catalog / "recipes").iterdir()) == []  # no recipe staged or installed
    assert not (tmp_path / "work").exists()  # refused before any source was fetched

    # the found commit against trixie's source: Debian's patch already made the change,
    # so the apply check rejects it (previously applied), and nothing is written
    diff = patch.read_bytes().split(b"\n---\n", 1)[1]
    with pytest.raises(PatchRejectedError) as rejected:
        backport_patch(
            "libarchive", status.version, diff, [("Description", "rar: fix double free")],
            [CVE], name=f"{CVE}-{FIX[:12]}.patch", catalog_root=catalog,
            work=tmp_path / "work2",
        )  # fmt: skip
    assert "does not apply to libarchive-3.7.4" in rejected.value.message
    assert any("previously applied" in d for d in rejected.value.details)
    assert list((catalog / "recipes").iterdir()) == []


@pytest.mark.network
def test_release_status_of_a_cve_trixie_does_not_name() -> None:
    """jq's CVE-2025-49014 (introduced in 1.8): trixie's packaging names no fix for it."""
    status = release_status("jq", "CVE-2025-49014")
    assert not status.fixed
    assert status.fixed_line == ""
    assert status.patches == ()
    assert status.version.startswith("1.7.1-")


@pytest.mark.network
@pytest.mark.slow
def test_backport_of_a_fix_whose_code_trixie_lacks_stops_as_not_affected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """jq's CVE-2025-49014 was introduced in 1.8: trixie's 1.7.1 source has no counterpart."""
    repo = FIXBENCH / "repos" / "jq.git"
    if not repo.exists():
        pytest.skip("fixbench is not here")
    cve = "CVE-2025-49014"
    catalog = tmp_path / "catalog"
    (catalog / "recipes").mkdir(parents=True)
    code = main(
        ["research", cve, "--repo", str(repo), "--record", str(_input_record(tmp_path, cve)),
         "--top", "1", "--package", "jq", "--backport", "--catalog", str(catalog),
         "--work", str(tmp_path / "work")]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert " 1. 499c91bca9" in captured.out
    assert code == 1, captured.err
    assert f"(trixie) is not affected by {cve} (vulnerable_code_not_present)" in captured.err
    assert "src/builtin.c" in captured.err  # the hunks without counterpart, as evidence
    assert list((catalog / "recipes").iterdir()) == []
    assert not (tmp_path / "work" / "affected").exists()  # the unpacked tree is removed
