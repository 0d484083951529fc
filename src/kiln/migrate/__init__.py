"""``kiln migrate``: rewrite a Dockerfile's FROM lines to kiln images, and explain each.

The core is pure: ``migrate(text, catalog, prefix)`` returns a ``Migration`` (the new
text and one ``Rewrite | Kept | Unmapped`` per FROM). ``load_catalog`` reads the image
specs' ``compatibility`` sections; ``read_dockerfile``/``write_migration`` are the file
edges. Modelled on Chainguard's dfc: a dry-run diff by default, ``--write`` to apply.
"""

from kiln.migrate._catalog import (
    Catalog,
    CatalogImage,
    CatalogMatch,
    catalog_from_specs,
    default_catalog_dir,
    load_catalog,
    spec_paths,
)
from kiln.migrate._context import BuildContext, DirectoryContext
from kiln.migrate._dockerfile import Dockerfile, FromLine, Instruction, Stage, parse_dockerfile
from kiln.migrate._files import MAX_DOCKERFILE_BYTES, read_dockerfile, write_migration
from kiln.migrate._plan import Kept, Migration, Outcome, Rewrite, Unmapped, migrate
from kiln.migrate._reference import ReferenceSyntaxError, SourceReference
from kiln.migrate._render import (
    README_BEGIN,
    README_END,
    explain,
    notes_markdown,
    notes_text,
    splice_readme,
    unified_diff,
)

__all__ = [
    "MAX_DOCKERFILE_BYTES",
    "README_BEGIN",
    "README_END",
    "BuildContext",
    "Catalog",
    "CatalogImage",
    "CatalogMatch",
    "DirectoryContext",
    "Dockerfile",
    "FromLine",
    "Instruction",
    "Kept",
    "Migration",
    "Outcome",
    "ReferenceSyntaxError",
    "Rewrite",
    "SourceReference",
    "Stage",
    "Unmapped",
    "catalog_from_specs",
    "default_catalog_dir",
    "explain",
    "load_catalog",
    "migrate",
    "notes_markdown",
    "notes_text",
    "parse_dockerfile",
    "read_dockerfile",
    "spec_paths",
    "splice_readme",
    "unified_diff",
    "write_migration",
]
