"""Recipe files: model errors with positions, DEP-3 headers, refusing a stale base."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.recipes import (
    RecipeError,
    StaleBaseError,
    check_base,
    load_recipe,
    parse_dep3,
    rebased,
)
from kiln.recipes.model import Hardening, Recipe
from recipes.conftest import SourceRepo

GOOD_PATCH = """\
Description: Fix a thing
Origin: upstream, https://git.kiln.invalid/commit/1
CVE: CVE-2026-0001, CVE-2026-0002
---
--- a/x
+++ b/x
@@ -1 +1 @@
-a
+b
"""


def recipe_dir(tmp_path: Path, body: str, patch: str | None = GOOD_PATCH) -> Path:
    recipes = tmp_path / "recipes"
    (recipes / "patches" / "hello").mkdir(parents=True, exist_ok=True)
    if patch is not None:
        (recipes / "patches" / "hello" / "fix.patch").write_text(patch)
    path = recipes / "hello.yaml"
    path.write_text(body)
    return path


BASE = "source: hello\nversion: '1.0-1+deb13u1'\npatches:\n  - path: patches/hello/fix.patch\n"


def test_recipe_loads_with_patches_and_cves(tmp_path: Path) -> None:
    loaded = load_recipe(recipe_dir(tmp_path, BASE))
    assert loaded.recipe.kiln_version == "1.0-1+deb13u1+kiln1"
    assert loaded.cves == ("CVE-2026-0001", "CVE-2026-0002")
    assert loaded.patches[0].header.summary == "Fix a thing"
    assert len(loaded.sha256) == 64


def test_patch_paths_are_absolute_when_the_recipe_path_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `kiln package build recipes/jq.yaml` from the checkout: patch(1) later runs with -d
    # inside the source tree, where a relative patch path would name nothing
    recipe_dir(tmp_path, BASE)
    monkeypatch.chdir(tmp_path)
    loaded = load_recipe(Path("recipes/hello.yaml"))
    assert loaded.patches[0].path.is_absolute()
    assert loaded.patches[0].path == tmp_path / "recipes/patches/hello/fix.patch"


def test_unknown_field_points_at_its_line_and_column(tmp_path: Path) -> None:
    path = recipe_dir(tmp_path, BASE + "hardening:\n  fortify: 3\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    err = caught.value
    assert err.location is not None
    assert (err.location.line, err.location.column) == (6, 3)
    assert "unknown field 'fortify'" in str(err)
    assert "did you mean fortify-source" in str(err)


def test_nocheck_needs_a_justification(tmp_path: Path) -> None:
    path = recipe_dir(tmp_path, BASE + "profiles:\n  - name: nocheck\n")
    with pytest.raises(RecipeError, match="required field 'justification'") as caught:
        load_recipe(path)
    assert caught.value.location is not None
    assert caught.value.location.line == 6


def test_unregistered_profile_and_kiln_base_version_are_refused(tmp_path: Path) -> None:
    bad_profile = BASE + "profiles:\n  - name: fast\n    justification: because it is faster\n"
    with pytest.raises(RecipeError, match="not a registered build profile"):
        load_recipe(recipe_dir(tmp_path, bad_profile))
    kiln_base = BASE.replace("1.0-1+deb13u1", "1.0-1+kiln1")
    with pytest.raises(RecipeError, match="already a kiln version"):
        load_recipe(recipe_dir(tmp_path, kiln_base))


def test_recipe_file_must_be_named_after_its_source(tmp_path: Path) -> None:
    path = recipe_dir(tmp_path, BASE.replace("source: hello", "source: other"))
    with pytest.raises(RecipeError, match=r"name it other\.yaml"):
        load_recipe(path)


def test_patch_path_cannot_escape_the_recipes_directory(tmp_path: Path) -> None:
    body = BASE.replace("patches/hello/fix.patch", "patches/../../etc/passwd.patch")
    with pytest.raises(RecipeError, match=r"no '\.\.'"):
        load_recipe(recipe_dir(tmp_path, body))
    missing = BASE.replace("fix.patch", "absent.patch")
    with pytest.raises(RecipeError, match="does not exist") as caught:
        load_recipe(recipe_dir(tmp_path, missing))
    assert caught.value.location is not None
    assert caught.value.location.line == 4


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "no DEP-3 header"),
        ("Origin: vendor\nCVE: none\n", "no Description"),
        ("Description: x\nCVE: none\n", "neither Origin nor Bug"),
        ("Description: x\nOrigin: vendor\n", "no CVE field"),
        ("Description: x\nOrigin: vendor\nCVE: CVE-26-1\n", "not a list of CVE ids"),
    ],
)
def test_dep3_header_is_required(header: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_dep3(header + "--- a/x\n+++ b/x\n", path="p.patch")


def test_dep3_accepts_bug_instead_of_origin_and_cve_none() -> None:
    header = parse_dep3(
        "Subject: tidy\nBug-Debian: https://bugs.debian.org/1\nCVE: none\n\n--- a/x\n",
        path="p.patch",
    )
    assert header.cves == ()
    assert header.bugs == ("https://bugs.debian.org/1",)


def test_recipe_on_an_older_debian_version_is_refused(srcrepo: SourceRepo, tmp_path: Path) -> None:
    universe = srcrepo.universe()
    loaded = load_recipe(recipe_dir(tmp_path, BASE.replace("1.0-1+deb13u1", "1.0-1")))
    with pytest.raises(StaleBaseError) as caught:
        check_base(loaded, universe)
    err = caught.value
    assert "newest version" in str(err)
    assert "1.0-1+deb13u1 (trixie-security)" in str(err)
    assert err.hint is not None
    assert "shadow" in err.hint
    assert err.location is not None
    assert err.location.line == 2
    current = load_recipe(recipe_dir(tmp_path, BASE))
    assert check_base(current, universe).version == "1.0-1+deb13u1"


def test_hardening_buildflags_conf() -> None:
    conf = Hardening().buildflags_conf()
    # a preprocessor define: in CPPFLAGS after dpkg's own, never in CFLAGS (autoconf puts
    # CFLAGS first, so =2 then redefined it with a warning; tests/sandbox/test_build_flags.py)
    assert "APPEND CPPFLAGS -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3" in conf
    assert "FORTIFY" not in "".join(line for line in conf.splitlines() if "CPPFLAGS" not in line)
    assert "APPEND LDFLAGS -Wl,-z,now" in conf
    with pytest.raises(ValueError, match="single compiler/linker flag"):
        Hardening.model_validate({"extra-cflags": ["-O2; rm -rf /"]})


def test_rebased_rewrites_only_the_version_and_refuses_an_invalid_one(tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text('source: hello\n# version: 1.0-1 stays a comment\nversion: "1.0-1"\n')
    loaded = load_recipe(path)
    assert rebased(loaded, "1.0-2") == (
        b'source: hello\n# version: 1.0-1 stays a comment\nversion: "1.0-2"\n'
    )
    with pytest.raises(RecipeError):
        rebased(loaded, "not a version")


def test_build_options_are_dpkg_words_kiln_does_not_set_itself() -> None:
    base = {"source": "libarchive", "version": "3.7.4-4+deb13u1"}
    recipe = Recipe.model_validate({**base, "build-options": ["check", "terse"]})
    assert recipe.build_options == ("check", "terse")
    for bad, why in (
        (["parallel=8"], "sets parallel= itself"),
        (["nocheck"], "nocheck is the nocheck profile"),
        (["check; rm -rf /"], "not a DEB_BUILD_OPTIONS word"),
        (["-x"], "not a DEB_BUILD_OPTIONS word"),
        (["check", "check"], "listed more than once"),
    ):
        with pytest.raises(ValueError, match=why):
            Recipe.model_validate({**base, "build-options": bad})
    with pytest.raises(ValueError, match="contradicts the nocheck profile"):
        Recipe.model_validate(
            {
                **base,
                "build-options": ["check"],
                "profiles": [{"name": "nocheck", "justification": "too slow to run here"}],
            }
        )
