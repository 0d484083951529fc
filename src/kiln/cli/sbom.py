"""``kiln sbom LAYOUT --format spdx-json|cyclonedx-json``: a thin adapter over ``kiln.sbom``.

Reads one platform of an OCI image layout, writes the SBOM to ``--output`` (atomically)
or standard output. ``--lock`` adds each .deb's sha256 from the image's lock file.
"""

# kiln.sbom (spdx-tools, cyclonedx) loads inside the command so other commands start fast.
# typer commands mirror their options as parameters.
# ruff: noqa: PLC0415

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app, err_console
from kiln.epoch import source_date_epoch
from kiln.errors import InputError


@app.command("sbom")
def sbom(
    layout: Annotated[
        Path, typer.Argument(help="OCI image layout directory (as `kiln build` writes it)")
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="spdx-json or cyclonedx-json")
    ] = "spdx-json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(help="os/arch\\[/variant] of a multi-platform image (default linux/amd64)"),
    ] = None,
    lock: Annotated[
        Path | None,
        typer.Option(help="the image's lock file: adds each .deb's sha256 and file name"),
    ] = None,
    supplier: Annotated[
        str,
        typer.Option(help="the image's supplier when it has no vendor annotation"),
    ] = "kiln",
) -> None:
    """Write the SBOM of an image: SPDX 2.3 or CycloneDX 1.6 JSON, from what is installed."""
    from kiln.fileio import atomic_write
    from kiln.resolve.lockfile import read_lock
    from kiln.sbom import FORMATS, read_sbom_input, render_sbom

    if fmt not in FORMATS:
        choices = ", ".join(FORMATS)
        raise InputError(f"unknown SBOM format {fmt!r}", hint=f"choose one of: {choices}")
    if not layout.is_dir():
        raise InputError(f"{layout}: not a directory; kiln sbom reads an OCI image layout")
    inp = read_sbom_input(
        layout,
        platform=platform,
        lock=read_lock(lock) if lock is not None else None,
        source_date_epoch=source_date_epoch(),
        default_supplier=supplier,
    )
    for warning in inp.warnings:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    data = render_sbom(inp, fmt)  # narrowed to SbomFormat by the FORMATS check
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    atomic_write(output, data)
    err_console.print(
        f"wrote {fmt} SBOM of {inp.image.name} {inp.image.platform} "
        f"({len(inp.packages)} packages) to {output}",
        markup=False,
        highlight=False,
    )
