"""Source builds: recipes, verified source fetch, build roots, hermetic builds, rebuilds.

Public interface:

* ``load_recipe(path) -> LoadedRecipe`` (``Recipe`` model, DEP-3 checked patches) and
  ``check_base(loaded, universe)`` (refuses a base older than Debian's newest);
* ``load_sources(distro, ...) -> SourceUniverse`` (signed ``Sources.xz``) and
  ``fetch_source(package, dest, ...) -> FetchedSource`` (sha256-checked, .dsc synthesised);
* ``ensure_build_root(spec, ...) -> BuildRoot`` (mmdebstrap, cached by digest);
* ``build_in_sandbox(fetched, ...) -> BuildOutput`` (bwrap, no network, non-root);
* ``compare_debs(ours, theirs) -> RebuildComparison`` (independent rebuild verification).
"""

from kiln.recipes.build import BuildError, BuildOutput, PatchError, build_in_sandbox
from kiln.recipes.buildroot import BuildRoot, BuildRootSpec, ensure_build_root
from kiln.recipes.dep3 import Dep3Header, parse_dep3
from kiln.recipes.fetch import FetchedSource, fetch_source, synthesise_dsc
from kiln.recipes.index import (
    SourceFile,
    SourcePackage,
    SourceUniverse,
    load_sources,
    parse_sources,
)
from kiln.recipes.load import (
    LoadedPatch,
    LoadedRecipe,
    RecipeError,
    StaleBaseError,
    check_base,
    load_recipe,
    parse_recipe,
)
from kiln.recipes.model import Hardening, Patch, Profile, Recipe, RecipeTest

__all__ = [
    "BuildError",
    "BuildOutput",
    "BuildRoot",
    "BuildRootSpec",
    "Dep3Header",
    "FetchedSource",
    "Hardening",
    "LoadedPatch",
    "LoadedRecipe",
    "Patch",
    "PatchError",
    "Profile",
    "Recipe",
    "RecipeError",
    "RecipeTest",
    "SourceFile",
    "SourcePackage",
    "SourceUniverse",
    "StaleBaseError",
    "build_in_sandbox",
    "check_base",
    "ensure_build_root",
    "fetch_source",
    "load_recipe",
    "load_sources",
    "parse_dep3",
    "parse_recipe",
    "parse_sources",
    "synthesise_dsc",
]
