"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .build import BuildError, BuildOutput, PatchError, build_in_sandbox
from .buildroot import BuildRoot, BuildRootSpec, ensure_build_root
from .dep3 import Dep3Header, parse_dep3
from .fetch import FetchedSource, fetch_source, synthesise_dsc
from .load import (
    LoadedPatch,
    LoadedRecipe,
    RecipeError,
    StaleBaseError,
    check_base,
    load_recipe,
    parse_recipe,
    rebased,
)
from .model import Hardening, Patch, Profile, Recipe, RecipeTest

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
    "StaleBaseError",
    "build_in_sandbox",
    "check_base",
    "ensure_build_root",
    "fetch_source",
    "load_recipe",
    "parse_dep3",
    "parse_recipe",
    "rebased",
    "synthesise_dsc",
]
