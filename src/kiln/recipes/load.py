"""Read a recipe from YAML (errors as ``file:line:column``) and check it against Debian.

The YAML is read by ``kiln.yamldoc.load_yaml``, as image specs are (kiln.spec.load):
plain data only (no aliases, tags or deep nesting), and a pydantic error on
``patches[1].path`` points at that line.
Each patch named by the recipe is read and its DEP-3 header checked. ``check_base``
refuses a recipe whose base version is not the newest in ``<codename>`` /
``<codename>-security``: ``+kiln1`` sorts above its base, and would shadow a newer
Debian (security) update if the base were older.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.debian.source_index import SourcePackage, SourceUniverse
from kiln.debian.version import compare_versions
from kiln.errors import InputError, Location, PolicyError
from kiln.recipes.dep3 import Dep3Header, parse_dep3
from kiln.recipes.model import Recipe
from kiln.yamldoc import locate, parse_yaml_model, read_limited

MAX_RECIPE_BYTES = 1024 * 1024
MAX_PATCH_BYTES = 8 * 1024 * 1024


class RecipeError(InputError):
    """A recipe is not valid YAML, does not fit the recipe model, or names a bad patch."""


class StaleBaseError(PolicyError):
    """The recipe starts from a Debian version older than the newest one published."""


@dataclass(frozen=True)
class LoadedPatch:
    """A patch file of a recipe: where it is, its bytes' digest and its DEP-3 header."""

    path: Path
    name: str  # file name, as it will appear in debian/patches/
    sha256: str
    header: Dep3Header
    text: str


@dataclass(frozen=True)
class LoadedRecipe:
    """A parsed recipe with its file, digest, patches and a way to locate fields."""

    path: Path
    recipe: Recipe
    sha256: str
    patches: tuple[LoadedPatch, ...]
    _tree: Any

    def locate(self, field_path: Sequence[str | int]) -> Location:
        return locate(self._tree, self.path, field_path)

    @property
    def cves(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for patch in self.patches:
            seen.update(dict.fromkeys(patch.header.cves))
        return tuple(seen)


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Parse, validate and read the patches of the recipe at ``path``."""
    path = Path(path)
    data = read_limited(path, what="recipe", limit=MAX_RECIPE_BYTES, error=RecipeError)
    return parse_recipe(data, path, base_dir=path.parent)


def parse_recipe(data: bytes, path: Path, *, base_dir: Path) -> LoadedRecipe:
    """Parse recipe bytes; patches are read relative to ``base_dir`` (``recipes/``)."""
    recipe, tree = parse_yaml_model(data, path, Recipe, what="recipe", error=RecipeError)
    if path.stem != recipe.source:
        raise RecipeError(
            f"recipe file {path.name} builds {recipe.source!r}; name it {recipe.source}.yaml",
            locate(tree, path, ("source",)),
        )
    patches = []
    for index, patch in enumerate(recipe.patches):
        where = locate(tree, path, ("patches", index, "path"))
        patches.append(_read_patch(base_dir, patch.path, where))
    names = [p.name for p in patches]
    if len(set(names)) != len(names):
        raise RecipeError(
            "two patches have the same file name", Location(str(path), field="patches")
        )
    return LoadedRecipe(path, recipe, hashlib.sha256(data).hexdigest(), tuple(patches), tree)


def _read_patch(base_dir: Path, relative: str, where: Location) -> LoadedPatch:
    target = base_dir / relative
    try:
        resolved = target.resolve(strict=True)
    except (FileNotFoundError, OSError):
        raise RecipeError(f"patch {relative} does not exist (under {base_dir})", where) from None
    if not resolved.is_relative_to(base_dir.resolve()):
        raise RecipeError(f"patch {relative} leads outside {base_dir}", where)
    data = resolved.read_bytes()
    if len(data) > MAX_PATCH_BYTES:
        raise RecipeError(f"patch {relative} is larger than {MAX_PATCH_BYTES} bytes", where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"patch {relative} is not UTF-8 (byte {exc.start})", where) from exc
    header = parse_dep3(text, path=str(target))
    # absolute: patch(1) runs with -d inside the source tree
    return LoadedPatch(resolved, target.name, hashlib.sha256(data).hexdigest(), header, text)


def rebased(loaded: LoadedRecipe, version: str) -> bytes:
    """The recipe file's bytes with its ``version`` set to ``version``, nothing else changed.

    Only the scalar on the ``version`` line is rewritten (comments, order and quoting of
    every other line stay as the author wrote them); the result is parsed again, so a
    version that does not fit the recipe model is refused here, not written.
    """
    data = read_limited(loaded.path, what="recipe", limit=MAX_RECIPE_BYTES, error=RecipeError)
    where = loaded.locate(("version",))
    lines = data.decode("utf-8").splitlines(keepends=True)
    index = (where.line or 0) - 1
    old = loaded.recipe.version
    if not 0 <= index < len(lines) or old not in lines[index]:
        raise RecipeError(f"cannot find version {old!r} on its line to rewrite it", where)
    start = lines[index].find(old, max((where.column or 1) - 1, 0))
    start = start if start >= 0 else lines[index].index(old)
    lines[index] = lines[index][:start] + version + lines[index][start + len(old) :]
    text = "".join(lines).encode("utf-8")
    again = parse_recipe(text, loaded.path, base_dir=loaded.path.parent)
    if again.recipe.version != version:
        raise RecipeError(f"version {version!r} does not survive a round trip", where)
    return text


def check_base(loaded: LoadedRecipe, universe: SourceUniverse) -> SourcePackage:
    """The index entry the recipe starts from; refuse it unless it is Debian's newest."""
    recipe = loaded.recipe
    versions = universe.versions(recipe.source)
    suites = ", ".join(universe.base_urls)
    if not versions:
        raise RecipeError(
            f"source package {recipe.source!r} is not in {suites}",
            loaded.locate(("source",)),
        )
    newest = versions[0]
    if compare_versions(recipe.version, newest.version) != 0:
        older = compare_versions(recipe.version, newest.version) < 0
        raise StaleBaseError(
            f"recipe starts from {recipe.source} {recipe.version}, but the newest version in "
            f"{suites} is {newest.version} ({newest.suite})",
            loaded.locate(("version",)),
            hint=(
                f"{recipe.kiln_version} would sort above {recipe.version} and shadow Debian's "
                f"newer {newest.version} (possibly a security update); rebase the recipe on "
                f"{newest.version}"
                if older
                else f"{recipe.version} is not published; use {newest.version}"
            ),
        )
    return newest
