"""The 3-way port on the real archive: a fix that does not apply to trixie's libxml2 as
is, carried by git's merge onto ``v2.9.14``, built, and the image scanned clean of it.

CVE-2025-10911 (libxslt's use-after-free, fixed in libxml2 by "Ignore next/prev of
documents when traversing XPath", d583ca9bbfbf, libxml2 issue #996): sid's
2.15.2+dfsg-0.1 names it; trixie's 2.12.7+dfsg+really2.9.14-2.1+deb13u3 (2026-12-07;
the tests read the day's version and skip once trixie fixes the CVE itself) does not.
The fix was written against 2.15's ``xpath.c``, whose function headers say
``xmlNode *``/``xmlXPathParserContext *`` where 2.9.14 says ``xmlNodePtr``/
``xmlXPathParserContextPtr``: ``patch -F 0`` rejects 2 of its 5 hunks, and the cherry-pick
onto ``v2.9.14`` merges cleanly. The merged code uses nothing 2.9.14 lacks (node types
and pointers only), so the package builds with it.

The first test is the check alone (about 10 s: the source fetched and unpacked, the
merge); the second is the whole ``--backport`` through kiln's entry point (about 4 min:
the libxml2 build, about 180 s, dominates). Real components only, as in
``test_e2e_libxml2_network.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.research.backport import check_on_release
from kiln.research.gitrepo import open_repo
from kiln.research.patch import commit_diff
from research.conftest import FIXBENCH
from research.xmllint_catalog import (
    assert_backported,
    backport_xmllint,
    open_in_trixie,
    xmllint_catalog,
)

CVE = "CVE-2025-10911"
FIX = "d583ca9bbfbfa58f8f2c400c7eade02dfc70bbbd"  # Ignore next/prev of documents ...
LIBXML2 = FIXBENCH / "repos" / "libxml2.git"
# the context of the port's first hunk: 2.9.14's signature, not the fix's own
PORTED_CONTEXT = "xmlXPathNextFollowingSibling(xmlXPathParserContextPtr ctxt, xmlNodePtr cur)"


@pytest.mark.network
def test_the_fix_does_not_apply_to_trixie_and_its_3_way_merge_onto_the_tag_does(
    tmp_path: Path,
) -> None:
    version = open_in_trixie(CVE).version
    with open_repo(LIBXML2) as git:
        commit = git.log([FIX], max_count=1)[0]
        diff = commit_diff(git, commit)
        checked = check_on_release(
            "libxml2", version, diff, name=f"{CVE}.patch", work=tmp_path / "work", repo=git,
            sha=FIX,
        )  # fmt: skip
    # 3 of the 5 hunks' pre-images are there: affected as far as the hunks tell
    assert checked.verdict.status == "under_investigation"
    assert sum(h.present for h in checked.verdict.hunks) == 3
    assert checked.ported_onto == "v2.9.14"
    assert "2 out of 5 hunks FAILED" in checked.rejected
    ported = checked.diff.decode()
    assert PORTED_CONTEXT in ported
    assert "+    if (cur->type == XML_DOCUMENT_NODE)" in ported
    assert not (tmp_path / "work").exists()


@pytest.mark.network
@pytest.mark.slow
def test_research_ports_a_fix_by_3_way_merge_builds_it_and_the_image_scans_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = open_in_trixie(CVE).version
    catalog = xmllint_catalog(tmp_path, monkeypatch)
    capsys.readouterr()

    code = backport_xmllint(CVE, catalog, tmp_path / "work")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "fixed upstream in 2.15.2" in err
    assert f" 1. {FIX[:12]}" in out
    # 3 of the 5 hunks' pre-images are in 2.9.14 as the fix has them: not a plain apply
    assert f"affected? under_investigation (libxml2 {version}); 3 of 5 hunks present" in err
    assert (
        "the fix did not apply as is; ported by a 3-way merge onto v2.9.14, "
        f"and the port applies to libxml2 {version}"
    ) in err
    # the recipe's patch is the port (2.9.14's context), its DEP-3 headers say so
    text = assert_backported(err, catalog, cve=CVE, fix=FIX, version=version)
    assert "3-way merge onto the upstream tag v2.9.14" in " ".join(text.split())
    assert PORTED_CONTEXT in text
