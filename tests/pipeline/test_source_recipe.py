"""recipes/libarchive.yaml as a backport's starting point (offline).

A backport (`kiln research --backport`, the factory's unstable backport) stages its
recipe from the catalog's recipe of the same version: libarchive's must keep the
``check`` build option, without which its debian/rules skips its own test suite, and
its tests (one of them checks that the library exports no private symbols, the failure
the build flags fix in kiln.recipes.build addressed).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from kiln.debian.distro import get_distro
from kiln.pipeline import backport, packagecache
from kiln.pipeline.backport import PatchFile
from kiln.pipeline.packagecache import build_key
from kiln.recipes.build import BUILD_ENVIRONMENT, build_environment
from kiln.recipes.load import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
FIX = b"--- a/NEWS\n+++ b/NEWS\n@@ -1 +1 @@\n-a\n+b\n"


def test_a_staged_libarchive_backport_keeps_check_hardening_and_tests(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(RECIPES, catalog / "recipes")
    base = load_recipe(catalog / "recipes" / "libarchive.yaml").recipe
    assert base.build_options == ("check",)
    assert "private-symbols-hidden" in {t.name for t in base.tests}
    staged = backport.stage_recipe(
        "libarchive", base.version, [PatchFile("fix.patch", FIX, ())], ["CVE-2026-0001"],
        distro=get_distro("debian-13"), catalog_root=catalog, staging=tmp_path / "staged",
        updated=dt.date(2026, 12, 7), note="a backport",
    )  # fmt: skip
    recipe = load_recipe(staged.recipe).recipe
    assert recipe.revision == base.revision + 1
    assert recipe.build_options == base.build_options
    assert recipe.hardening == base.hardening
    assert recipe.tests == base.tests
    env = build_environment(jobs=2, profiles=recipe.profile_names, options=recipe.build_options)
    assert env["DEB_BUILD_OPTIONS"].split() == ["parallel=2", "check"]


def test_a_package_build_key_changes_with_kilns_build_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A backport built before the flags fix must not be reused after it (it was built
    # with every -Werror configure check failing and fortify level 2 in effect).
    def key() -> str:
        return build_key(
            "libarchive", "3.7.4-4+deb13u1", [("fix.patch", FIX, ())], cves=["CVE-2026-0001"],
            release="trixie", arch="amd64", recipe=None, tests=[],
        )  # fmt: skip

    now = key()
    monkeypatch.setattr(packagecache, "BUILD_ENVIRONMENT", BUILD_ENVIRONMENT - 1)
    assert key() != now
