"""The catalog the libxml2 end-to-end tests backport into, set up as ``make demo-research``
sets up its own: the tools family's xmllint spec, locked, and kiln's database filled by
the ``debian-archive`` feed for that spec's sources (``KILN_DB`` in ``tmp_path``), with
``KILN_RESEARCH_MIRRORS`` naming fixbench's clones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.pipeline.backport import ReleaseStatus, release_status
from research.conftest import FIXBENCH


def open_in_trixie(cve: str) -> ReleaseStatus:
    """Trixie's libxml2 today, when it still lacks ``cve``'s fix; otherwise the test is
    skipped, saying why (fixbench's clone absent, or trixie fixes the CVE itself now)."""
    if not (FIXBENCH / "repos" / "libxml2.git").exists():
        pytest.skip("fixbench's libxml2 clone is not here")
    trixie = release_status("libxml2", cve)  # the archive moves: read today's state
    if trixie.fixed:
        pytest.skip(f"trixie's libxml2 {trixie.version} fixes {cve} itself now: the case is gone")
    return trixie


def xmllint_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The catalog folder (the working directory afterwards)."""
    monkeypatch.setenv("KILN_DB", str(tmp_path / "vuln.db"))
    monkeypatch.setenv("KILN_RESEARCH_MIRRORS", str(FIXBENCH / "repos"))
    catalog = tmp_path / "catalog"
    (catalog / "images").mkdir(parents=True)
    generated = tmp_path / "generated"
    assert main(["catalog", "generate", str(generated), "--family", "tools"]) == 0
    shutil.copy(generated / "debian-13" / "xmllint.yaml", catalog / "images" / "xmllint.yaml")
    monkeypatch.chdir(catalog)
    assert main(["lock", "images/xmllint.yaml"]) == 0
    assert main(["db", "update", "--source", "debian-archive", "--catalog", "images",
                 "--distro", "debian-13"]) == 0  # fmt: skip
    return catalog


def backport_xmllint(cve: str, catalog: Path, work: Path) -> int:
    """``kiln research CVE --package libxml2 --backport`` into ``catalog``, image xmllint."""
    return main(
        ["research", cve, "--package", "libxml2", "--backport", "--catalog", str(catalog),
         "--image", "xmllint", "--work", str(work), "--top", "3"]
    )  # fmt: skip


def assert_backported(err: str, catalog: Path, *, cve: str, fix: str, version: str) -> str:
    """What every successful backport of ``cve`` into xmllint prints and writes: the build,
    the image's tests, its Kiln-Fixes, both scans, the recipe naming the DEP-3 patch whose
    Origin is upstream's ``fix``. Returns the patch's text."""
    assert f"built libxml2 {version}+kiln1 " in err
    assert "image xmllint (dev, runtime): 4 tests passed, 0 failed" in err
    assert f"Kiln-Fixes libxml2: {cve}, libxml2-utils: {cve}" in err
    assert f"scan before: {cve} listed, listed; after: not listed, not listed" in err
    name = f"{cve}-{fix[:12]}.patch"
    text = (catalog / "recipes" / "patches" / "libxml2" / name).read_text()
    assert f"Origin: upstream, https://gitlab.gnome.org/gnome/libxml2/commit/{fix}" in text
    assert f"CVE: {cve}" in text
    assert "Forwarded: not-needed" in text
    recipe = (catalog / "recipes" / "libxml2.yaml").read_text()
    assert f"path: patches/libxml2/{name}" in recipe
    return text
