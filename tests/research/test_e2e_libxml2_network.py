"""Issue #17's end to end on the real archive: a CVE open in trixie, fixed only by
unstable's newer upstream release, found upstream, backported, built, the image
rebuilt from kiln's repository and scanned clean of it.

CVE-2026-86138 (libxml2: integer overflow in ``xmlDictAddQString``): trixie has
2.12.7+dfsg+really2.9.14-2.1+deb13u3 (2026-12-07; the test reads the day's version and
skips, saying so, once trixie fixes the CVE itself), whose changelog and patches do not
name it; sid's
2.15.4+dfsg-1 names it as fixed by the new upstream release. No advisory text is
reachable here (no NVD, no tracker), so the record is sid's changelog item. The
upstream repository is found through libxml2's packaging (``debian/upstream/metadata``
names gitlab.gnome.org) and read from fixbench's clone (``KILN_RESEARCH_MIRRORS``).

Real components only: the configured mirror (signed indexes, trixie's and sid's
packaging, the source tarballs), kiln's vulnerability database filled by the
``debian-archive`` feed, the fixbench clone, the shipped ranker, the bubblewrap build
sandbox, kiln's signed apt repository, the image build, its tests and the scanner.
Takes about 4 minutes (the libxml2 build, about 150 s, dominates).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from research.xmllint_catalog import (
    assert_backported,
    backport_xmllint,
    open_in_trixie,
    xmllint_catalog,
)

CVE = "CVE-2026-86138"
FIX = "e41032ae9f94d0db2d1074eb68ac7d69bd9e0992"  # fix: add overflow checks to xmlDictAddQString


@pytest.mark.network
@pytest.mark.slow
def test_research_backports_an_upstream_only_fix_and_the_rebuilt_image_scans_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = open_in_trixie(CVE).version
    catalog = xmllint_catalog(tmp_path, monkeypatch)
    capsys.readouterr()

    code = backport_xmllint(CVE, catalog, tmp_path / "work")
    out, err = capsys.readouterr()
    assert code == 0, err
    # the record is sid's changelog item; the finder ranks the upstream fix first
    assert "using libxml2 2.15.4+dfsg-1's changelog (sid)" in err
    assert "fixed upstream in 2.15.4" in err
    assert f" 1. {FIX[:12]}" in out
    # trixie's source carries the vulnerable code, and the patch applies as is
    assert f"affected? affected (libxml2 {version})" in err
    assert "ported by a 3-way merge" not in err
    # trixie's packaging runs no test suite for this build, and kiln says so
    assert "package tests: none ran (the test step ran no test suite" in err
    # the recipe is installed with its DEP-3 patch; the upstream commit is its Origin
    assert_backported(err, catalog, cve=CVE, fix=FIX, version=version)
