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

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
