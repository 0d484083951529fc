"""``kiln compat``: the drop-in compatibility suite (``compat/``), as a table and JSON.

A thin adapter over ``kiln.compat``: load the app declarations and stand-ins, run the
suite, render. Exit 0 when every app builds, runs and answers identically before and
after the FROM swap; 1 when one does not (the table and the failing log tails say
which); 2 for bad declarations; 3 when a tool is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kiln.cli.app import app, console, err_console
from kiln.errors import PolicyError
from kiln.fileio import atomic_write

# The suite's modules load inside the command so that every kiln command starts fast.
# ruff: noqa: PLC0415


@app.command("compat")
def compat(
    apps: Annotated[
        list[str] | None, typer.Argument(help="apps to run (directory names); default all")
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="the suite: app directories and standins.yaml")
    ] = Path("compat"),
    images: Annotated[Path, typer.Option(help="kiln's image specs")] = Path("images"),
    layouts: Annotated[
        Path | None,
        typer.Option(help="use kiln layouts already built here (e.g. out) instead of building"),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="store, logs and stand-ins (default: $KILN_CACHE/compat)"),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the JSON report here")
    ] = None,
    rebuild_standins: Annotated[
        bool, typer.Option(help="rebuild the stand-ins even when their inputs are unchanged")
    ] = False,
    scan: Annotated[bool, typer.Option(help="count CVEs with kiln scan")] = True,
    db: Annotated[str | None, typer.Option(help="vulnerability database for the scan")] = None,
) -> None:
    """Build and run real Dockerfiles on official-image stand-ins and on kiln's images."""
    from kiln.compat import SuiteConfig, load_apps, load_standins, render, run_suite, to_json
    from kiln.compat.model import STANDINS
    from kiln.debian.cache import default_cache_root
    from kiln.debian.sources import discover_mirrors
    from kiln.migrate import load_catalog

    selected = load_apps(directory, apps or ())
    standins = load_standins(directory / STANDINS)
    catalog = load_catalog(images)
    config = SuiteConfig(
        work=cache or default_cache_root() / "compat",
        images_dir=images,
        layouts=layouts,
        scan=scan,
        db=db,
        rebuild_standins=rebuild_standins,
    )
    result = run_suite(
        selected,
        standins,
        catalog,
        discover_mirrors(),
        config,
        progress=lambda line: err_console.print(line, markup=False, highlight=False),
    )
    # the table is read in CI logs too: never squeeze it below 140 columns
    wide = console if console.width >= 140 else Console(width=140, highlight=False)
    wide.print(render(result))
    if json_out is not None:
        atomic_write(json_out, to_json(result).encode("utf-8"))
        err_console.print(f"JSON report: {json_out}", markup=False)
    if not result.ok:
        failed = [a.name for a in result.apps if not a.ok]
        raise PolicyError(
            f"compatibility suite failed: {', '.join(failed) or 'see problems above'}",
            hint=f"logs: {config.logs}",
        )
