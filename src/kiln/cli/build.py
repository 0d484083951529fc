"""``kiln build SPEC...`` and ``kiln test SPEC|LAYOUT``: thin adapters over the pipeline.

The work happens in ``kiln.pipeline.build`` (spec + lock -> layouts) and
``kiln.pipeline.imagetest`` (layout -> tests in the sandbox -> CTRF); ``cli.buildview``
renders what they report. The CTRF report is written into the layout directory
(``out/<name>/ctrf-report.json``, next to ``hardening.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.app import app, console, err_console
from kiln.cli.buildview import (
    DEFAULT_OUTPUT,
    ConsoleBuildListener,
    show_check,
    split_csv,
    summary_table,
)
from kiln.errors import InputError

if TYPE_CHECKING:
    from kiln.assemble import Compression

# Assembly, the sandbox, the repository client, specs and locks load inside the
# commands, so that every kiln command (kiln verify too) starts without them.
# ruff: noqa: PLC0415


@app.command()
def build(
    specs: Annotated[list[Path], typer.Argument(help="image spec files (images/<name>.yaml)")],
    output: Annotated[Path, typer.Option(help="where layouts go")] = DEFAULT_OUTPUT,
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="only these archs, e.g. amd64,arm64")
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="only these variants, e.g. runtime")
    ] = None,
    frozen: Annotated[
        bool, typer.Option("--frozen", help="refuse to build if the lock is stale")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="relock against the archive first")
    ] = False,
    tar: Annotated[bool, typer.Option("--tar", help="also write an oci-archive")] = False,
    docker_archive: Annotated[
        bool, typer.Option("--docker-archive", help="also write a docker load / podman load tar")
    ] = False,
    compression: Annotated[str, typer.Option(help="gzip, zstd or none")] = "gzip",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="always assemble anew")] = False,
) -> None:
    """Build OCI image layouts (out/<name>/, out/<name>-dev/) from locked specs."""
    from kiln.pipeline import ArchiveAccess
    from kiln.pipeline.build import BuildOptions, build_spec
    from kiln.progress import ConsoleProgress
    from kiln.spec import load_spec

    options = BuildOptions(
        output=output,
        archs=tuple(split_csv(arch)),
        variants=tuple(split_csv(variant)),
        frozen=frozen,
        refresh=refresh,
        compression=_compression(compression),
        oci_archive=tar,
        docker_archive=docker_archive,
        cache=not no_cache,
    )
    archive = ArchiveAccess.from_environment()
    listener = ConsoleBuildListener()
    progress = ConsoleProgress(err_console)
    built = [
        b
        for path in specs
        for b in build_spec(load_spec(path), archive, options, listener=listener, progress=progress)
    ]
    console.print(summary_table(built))


def _compression(text: str) -> Compression:
    match text:
        case "gzip" | "zstd" | "none":
            return text
        case _:
            raise InputError(f"--compression {text!r}: use gzip, zstd or none")


@app.command("test")
def run_image_tests(
    target: Annotated[Path, typer.Argument(help="an image spec (YAML) or an OCI layout dir")],
    arch: Annotated[
        list[str] | None,
        typer.Option(
            "--arch",
            help="architecture(s) to test, e.g. amd64,arm64 (default: this machine's); "
            "another architecture's programs run through qemu-user",
        ),
    ] = None,
    tag: Annotated[str | None, typer.Option(help="tag in the layout (default: first)")] = None,
    output: Annotated[Path, typer.Option(help="where kiln build wrote layouts")] = DEFAULT_OUTPUT,
) -> None:
    """Run the image's tests inside it, sandboxed with bubblewrap; write a CTRF report."""
    from kiln.pipeline.imagetest import check_layouts, layouts_for
    from kiln.sandbox.unpack import host_arch

    archs = split_csv(arch) or [host_arch()]
    check_layouts(layouts_for(target, output), archs, tag=tag, on_checked=show_check)
