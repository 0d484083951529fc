"""``kiln schema`` (the JSON Schema of image specs) and ``kiln spec notes``.

``kiln spec notes`` prints each image's compatibility section: the official images it
replaces and what differs from them; ``--markdown`` is the README's table.
"""

# kiln.migrate (and the Debian client it reaches for versions) loads inside the commands,
# so that other commands start without it.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app, console
from kiln.errors import InputError


@app.command()
def schema() -> None:
    """Print the JSON Schema that image specs (images/<name>.yaml) follow."""
    from kiln.spec import ImageSpec

    document = ImageSpec.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "kiln image spec"
    console.print_json(json.dumps(document, sort_keys=True))


spec_app = typer.Typer(help="Read the image specs of the catalog.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")


@spec_app.command()
def notes(
    specs: Annotated[
        list[Path] | None, typer.Argument(help="spec files (default: every spec in --catalog)")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="a Markdown table, as the README lists it")
    ] = False,
    readme: Annotated[
        Path | None,
        typer.Option("--readme", help="replace the notes table between this file's markers"),
    ] = None,
    catalog_dir: Annotated[Path, typer.Option("--catalog", help="folder of image specs")] = Path(
        "images"
    ),
) -> None:
    """Print which official images each kiln image replaces and how it differs from them."""
    from kiln.fileio import atomic_write
    from kiln.migrate import (
        catalog_from_specs,
        notes_markdown,
        notes_text,
        spec_paths,
        splice_readme,
    )
    from kiln.spec import load_spec

    paths = tuple(specs) if specs else spec_paths(catalog_dir)
    images = catalog_from_specs((load_spec(p) for p in paths), with_locks=False).images
    if readme is not None:
        try:
            old = readme.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read {readme}: {exc.strerror}") from exc
        new = splice_readme(old, notes_markdown(images), path=str(readme))
        if new != old:
            atomic_write(readme, new.encode("utf-8"))
        typer.echo(f"{readme}: {'updated' if new != old else 'already up to date'}", err=True)
        return
    if markdown:
        typer.echo(notes_markdown(images), nl=False)
        return
    for line in notes_text(images):
        typer.echo(line)
