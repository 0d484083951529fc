"""The whole backport on the real archive: lz4's CVE-2025-62813 from Debian unstable into
the catalog's base image (issue #16's "at least one backport").

Real components only: the configured Debian mirror (signed Releases, Sources, the
packaging and source tarballs), mmdebstrap build roots, the bubblewrap sandbox that builds
lz4 with its own test step, kiln's signed apt repository, the image build from it, its
tests and kiln's scan against a database the debian-archive feed filled for the catalog.
It takes minutes (the build root once, then the build and two image builds).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixtures.archive_cases import require_unstable_only_fix
from kiln.errors import PolicyError
from kiln.forge.evidence import PackageChange, render_markdown
from kiln.pipeline.backport import (
    backport_from_unstable,
    backport_patch,
    evidence_for,
    find_unstable_fix,
)
from kiln.pipeline.scan import FeedRequest, update_feed
from kiln.recipes.load import load_recipe
from kiln.recipes.model import RecipeTest

ROOT = Path(__file__).parents[2]
CVE = "CVE-2025-62813"
# CVE-2025-62813: LZ4F_createCDict_advanced dereferenced a NULL dictionary. Debian's
# trixie liblz4 (1.10.0-4) crashes here (exit 139, measured); the fixed one returns NULL.
NULL_DICT_C = r"""
#include <stdio.h>
#include <lz4frame.h>
int main(void) {
  LZ4F_CDict* d = LZ4F_createCDict(NULL, 16);
  printf("%s\n", d == NULL ? "refused" : "accepted");
  return 0;
}
"""
LZ4_TESTS = (
    RecipeTest(name="round trip", run=("sh", "-c", "printf 'kiln kiln kiln' | lz4 -c | lz4 -dc")),
    RecipeTest(
        name=f"{CVE}: a NULL dictionary is refused",
        run=("sh", "-c", f"cat > /tmp/t.c <<'EOF'\n{NULL_DICT_C}EOF\n"
             "gcc -o /tmp/t /tmp/t.c -llz4 && /tmp/t"),
        expect_stdout="refused\n",
    ),
)  # fmt: skip


@pytest.mark.network
def test_lz4_fix_from_unstable_is_built_published_and_clears_the_scan_of_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(ROOT / "images", catalog / "images")
    shutil.copytree(ROOT / "recipes", catalog / "recipes")
    db = tmp_path / "vuln.db"
    monkeypatch.setenv("KILN_DB", str(db))
    update_feed(FeedRequest("debian-archive", catalog=catalog / "images"), db=str(db))
    require_unstable_only_fix(catalog, "base", "lz4", CVE, db=str(db))

    fix = find_unstable_fix("lz4", CVE)
    assert fix is not None
    assert fix.kind == "patch"
    assert [p.name for p in fix.patches] == [f"{CVE}.patch"]
    assert "1118757" in fix.bugs
    assert CVE in fix.changelog_line

    result = backport_from_unstable(
        fix, catalog_root=catalog, work=tmp_path / "work", image="base",
        gnupghome=tmp_path / "gnupg", tests=LZ4_TESTS,
    )  # fmt: skip
    assert result.kiln_version == f"{fix.release_version}+kiln1"
    assert {p.name for p in result.packages} >= {"liblz4-1", "liblz4-dev", "lz4"}
    assert [(n, ok) for n, ok, _ in result.package_tests.recipe_tests] == [
        ("round trip", True),
        (f"{CVE}: a NULL dictionary is refused", True),
    ]
    loaded = load_recipe(catalog / "recipes" / "lz4.yaml")
    assert loaded.cves == (CVE,)
    assert loaded.recipe.version == fix.release_version
    patch = result.patches[f"{CVE}.patch"]
    assert b"Bug-Debian: https://bugs.debian.org/1118757" in patch
    assert b"Origin: vendor, Debian " in patch
    assert ("CVE", CVE) in result.origin

    image = result.image
    assert image is not None
    assert image.kiln_fixes.get("liblz4-1") == CVE
    assert image.tests_failed == 0
    assert image.tests_passed > 0
    assert [s.cve_reported for s in image.before] == [True]
    assert [s.cve_reported for s in image.after] == [False]
    assert image.after[0].total < image.before[0].total
    # kiln builds this machine's architecture: arm64 keeps Debian's, and the result says so
    assert image.not_rebuilt == (f"dev/arm64: liblz4-1 {fix.release_version} (trixie)",)
    assert b"repositories: [kiln]" in result.files["images/base.yaml"]
    lock = json.loads(result.files["images/base.lock.json"])
    liblz4 = [
        p
        for variant in lock["variants"].values()
        for p in variant["amd64"]["packages"]
        if p["name"] == "liblz4-1"
    ]
    assert {(p["version"], p["suite"]) for p in liblz4} == {(result.kiln_version, "kiln")}
    assert not (catalog / "images" / "base.yaml").read_bytes().count(b"repositories: [kiln]")

    evidence = evidence_for(result, generation="g1")
    assert evidence.cves_fixed == (CVE,)
    assert PackageChange("liblz4-1", fix.release_version, result.kiln_version) in (
        evidence.packages
    )
    assert evidence.checks["test:scan"] == "pass"
    assert evidence.checks[f"test:recipe: {CVE}: a NULL dictionary is refused"] == "pass"
    assert evidence.provenance_digest is not None
    (origin,) = evidence.patches
    assert origin.headers["Bug-Debian"] == "https://bugs.debian.org/1118757"
    assert origin.changelog == fix.changelog_line
    body = render_markdown(evidence)  # text escaped for Markdown
    assert CVE.replace("-", "\\-") in body
    assert "1118757" in body


# jq's own test suite (tests/jq.test, run by dh_auto_test) made to expect `true` from
# `false`: the build's test step fails, which is what a patch that breaks a package does.
BREAK_JQ_TEST = "\n".join(
    [
        "--- a/tests/jq.test",
        "+++ b/tests/jq.test",
        "@@ -11,7 +11,7 @@",
        " ",
        " false",
        " null",
        "-false",
        "+true",
        " ",
        " null",
        " 42",
        "",
    ]
).encode()


@pytest.mark.network
def test_a_patch_whose_package_tests_fail_is_a_policy_error_naming_the_log(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(ROOT / "recipes", catalog / "recipes")
    before = (catalog / "recipes" / "jq.yaml").read_bytes()
    version = load_recipe(catalog / "recipes" / "jq.yaml").recipe.version
    headers = {"Description": "break a test on purpose", "Origin": "other, kiln's tests"}
    with pytest.raises(PolicyError, match="jq failed to build") as caught:
        backport_patch(
            "jq", version, BREAK_JQ_TEST, headers, ["CVE-2099-0001"], name="break.patch",
            catalog_root=catalog, work=tmp_path / "work", gnupghome=tmp_path / "gnupg",
        )  # fmt: skip
    log = tmp_path / "work" / "packages" / "jq.build.log"
    assert str(log) in (caught.value.hint or "")
    text = log.read_text(errors="replace")
    assert "dh_auto_test" in text
    assert "FAIL" in text  # the test runner's verdict is in the log
    assert (catalog / "recipes" / "jq.yaml").read_bytes() == before  # nothing installed
    assert not (catalog / "recipes" / "patches" / "jq" / "break.patch").exists()
    assert not (tmp_path / "work" / "repo").exists()  # nothing published
