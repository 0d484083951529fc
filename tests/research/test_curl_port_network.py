"""curl on the real archive: trixie's newest packaging missing, a fix that must be ported.

On this machine's mirror trixie lists curl 8.14.1-2+deb13u5 and 8.14.1-2+deb13u7 (the
newest); u7's ``.dsc`` and ``.debian.tar.xz`` are missing (404) while its binary
packages are there. ``release_status`` must answer from u7's binary changelog (u6 fixes
CVE-2026-8924; CVE-2026-12064 is named by no entry) and say where it read it. Then
``kiln research CVE-2026-12064 --version 8.14.1-2+deb13u5 --backport`` finds upstream's
fix, which does not apply to 8.14.1 (the code moved upstream): the 3-way merge onto
``curl-8_14_1`` conflicts in ``src/config2setopts.c``, and the command stops with that
error, nothing written. The CVE text is fixbench's INPUT fields only; curl is not built.
About 30 s (the 4 MB upstream tarball once, the ranking, the merge).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.pipeline.backport import release_status
from research.conftest import FIXBENCH
from research.test_backport_network import INPUT_FIELDS

U5 = "8.14.1-2+deb13u5"
CURL = FIXBENCH / "repos" / "curl.git"


def _record(tmp_path: Path, cve: str) -> Path:
    """The fixbench record of ``cve`` with its INPUT fields only (skip when absent)."""
    if not CURL.exists():
        pytest.skip("fixbench's curl clone is not here")
    rows = [json.loads(line) for line in (FIXBENCH / "cves.jsonl").read_text().splitlines()]
    full = next((row for row in rows if row["cve"] == cve), None)
    if full is None:
        pytest.skip(f"{cve} is not in fixbench")
    path = tmp_path / f"{cve}.json"
    path.write_text(json.dumps({k: full[k] for k in (*INPUT_FIELDS, "title") if k in full}))
    return path


@pytest.mark.network
def test_release_status_reads_the_binary_changelog_when_the_packaging_is_missing() -> None:
    fixed = release_status("curl", "CVE-2026-8924")
    if fixed.patches_known:
        pytest.skip(f"the mirror now has curl {fixed.version}'s packaging tarball")
    assert fixed.fixed
    assert "CVE-2026-8924" in fixed.fixed_line
    assert fixed.patches == ()
    assert "changelog.Debian.gz of binary" in fixed.evidence
    assert "patches are unknown" in fixed.evidence
    assert fixed.fetchable == U5  # the newest version whose .dsc and packaging are there
    newer = {m.cve: m.version for m in fixed.fixed_after(U5)}
    assert newer["CVE-2026-8924"] == "8.14.1-2+deb13u6"
    assert all(v != U5 for v in newer.values())

    open_ = release_status("curl", "CVE-2026-12064")
    assert not open_.fixed
    assert open_.fixed_line == ""
    assert open_.version == fixed.version


@pytest.mark.network
@pytest.mark.slow
def test_backport_of_a_fix_curl_moved_past_ends_in_the_conflict_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _record(tmp_path, "CVE-2026-12064")
    if release_status("curl", "CVE-2026-12064").fetchable != U5:
        pytest.skip(f"curl {U5} is no longer the newest fetchable version on the mirror")
    catalog = tmp_path / "catalog"
    (catalog / "recipes").mkdir(parents=True)
    (catalog / "images").mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    args = [
        "research", "CVE-2026-12064", "--repo", str(CURL), "--record", str(record),
        "--top", "1", "--package", "curl", "--backport", "--catalog", str(catalog),
        "--work", str(tmp_path / "work"),
    ]  # fmt: skip
    code = main(args)  # no --version: the newest's source is missing
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"the newest version whose source it has is {U5}" in err

    code = main([*args, "--version", U5])
    captured = capsys.readouterr()
    assert " 1. ab3bb8cd8be8" in captured.out  # upstream's fix, found by the ranker
    assert code == 1, captured.err  # PolicyError (PortConflictError): nothing backported
    err = " ".join(captured.err.split())
    assert "lacks the fixes of the newer versions" in err
    assert "CVE-2026-8924 (fixed in 8.14.1-2+deb13u6)" in err
    assert "3-way merge onto curl-8_14_1 conflicts" in err
    assert "conflict: src/config2setopts.c" in err
    assert "patch: 1 out of 1 hunk FAILED" in err
    assert "Traceback" not in captured.err
    assert list((catalog / "recipes").iterdir()) == []
    assert list((catalog / "images").iterdir()) == []
    assert not (tmp_path / "work").exists()
    assert list(scratch.iterdir()) == []  # the scratch work tree of the merge is gone
