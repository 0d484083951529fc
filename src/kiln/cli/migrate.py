"""``kiln migrate``: rewrite a Dockerfile's FROM lines to kiln images (dry run by default).

The unified diff goes to stdout (pipe it to ``patch -p1``); the explanation of every
FROM, mapped or not, goes to stderr. Exit 0 when every FROM is mapped (or names a stage
or ``scratch``), 1 when some line was left untouched, 2 for a file that is not a
Dockerfile or a bad option.
"""

# kiln.migrate (and the Debian client it reaches for versions) loads inside the commands,
# so that other commands start without it.
# ruff: noqa: PLC0415

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app
from kiln.errors import InputError, PolicyError


@app.command(name="migrate")
def migrate_command(
    dockerfile: Annotated[Path, typer.Argument(help="the Dockerfile to migrate")],
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            envvar="KILN_REGISTRY",
            help="HOST[:PORT]\\[/PREFIX] where kiln's images are published "
            "(FROM lines become PREFIX/<image>:<tag>)",
        ),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="rewrite the file in place (atomically)")
    ] = False,
    catalog_dir: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            help="folder of image specs (their compatibility sections decide the mapping); "
            "default $KILN_CATALOG, else the catalog kiln was installed with",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Rewrite FROM lines to kiln images: a diff on stdout, the reasons on stderr."""
    from kiln.migrate import (
        DirectoryContext,
        default_catalog_dir,
        explain,
        load_catalog,
        migrate,
        read_dockerfile,
        unified_diff,
        write_migration,
    )

    if not registry:
        raise InputError(
            "say where kiln's images are published: --registry HOST[:PORT][/PREFIX]",
            hint="or set KILN_REGISTRY; e.g. --registry registry.example/kiln",
        )
    catalog = load_catalog(catalog_dir if catalog_dir is not None else default_catalog_dir())
    text = read_dockerfile(dockerfile)
    # the build context is the Dockerfile's directory, as for `docker build -f Dockerfile .`
    context = DirectoryContext(dockerfile.parent)
    migration = migrate(text, catalog, registry, path=str(dockerfile), context=context)
    diff = unified_diff(migration)
    if diff and not write:
        typer.echo(diff, nl=False)
    for line in explain(migration, catalog):
        typer.echo(line, err=True)
    if write:
        if write_migration(migration, dockerfile):
            typer.echo(f"wrote {dockerfile}", err=True)
        else:
            typer.echo(f"{dockerfile} unchanged", err=True)
    elif not diff:
        typer.echo(f"{dockerfile}: nothing to change", err=True)
    left = migration.unmapped
    if left:
        lines = ", ".join(str(o.line) for o in left)
        raise PolicyError(
            f"{len(left)} of {len(migration.outcomes)} FROM lines left untouched "
            f"(line {lines}): see the reasons above",
            hint="change those lines by hand, or add the image to a spec's compatibility.replaces",
        )
