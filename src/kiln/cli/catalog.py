"""``kiln catalog generate|build|status|worker``: the catalog families at scale (docs/catalog.md).

Thin adapters over ``kiln.factory.catalogbuild``: plan the catalog from ``catalog/``
(packages checked against each release's verified index), write the generated specs,
build and test them through the Temporal workflow, and render the recorded outcomes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from kiln.cli.app import app, console, err_console
from kiln.errors import InputError, PolicyError
from kiln.text import plain_line as one_line

if TYPE_CHECKING:
    from kiln.spec.family import CatalogPlan, PackageExists

# The engine, the archive and the build load inside the commands.
# ruff: noqa: PLC0415

catalog_app = typer.Typer(
    help="The image catalog generated from the family tables in catalog/.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")

CheckoutOption = Annotated[
    Path | None,
    typer.Option("--catalog", help="the catalog checkout (default: the one you are in)"),
]
FamilyOption = Annotated[str | None, typer.Option("--family", help="only this family")]
ImageOption = Annotated[
    list[str] | None,
    typer.Option("--image", help="only this image (entry or spec name; repeatable)"),
]
ReleaseOption = Annotated[
    str | None, typer.Option("--release", help="only this release (debian-13, debian-12)")
]


def _root(catalog: Path | None) -> Path:
    from kiln.factory.wiring import checkout_root

    return checkout_root(catalog or Path.cwd())


def _plan(
    root: Path,
    *,
    family: str | None,
    image: list[str] | None,
    release: str | None,
    network_tests: bool = True,
) -> CatalogPlan:
    from kiln.factory.catalogbuild import package_checker, plan
    from kiln.pipeline import ArchiveAccess
    from kiln.spec.family import RELEASES

    if release is not None and release not in RELEASES:
        raise InputError(f"--release {release!r}: one of {', '.join(RELEASES)}")
    archive = ArchiveAccess.from_environment()
    exists: dict[str, PackageExists] = {
        r: package_checker(archive, r) for r in RELEASES if release in (None, r)
    }
    return plan(
        root,
        exists,
        family=family,
        names=image or (),
        release=release,
        network_tests=network_tests,
    )


def _first_line(text: str, limit: int = 100) -> str:
    line = one_line(text.splitlines()[0] if text else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _report_skips(found: CatalogPlan) -> None:
    for skip in found.skipped:
        err_console.print(
            f"skipped: {skip.location}: {one_line(skip.reason)}", markup=False, highlight=False
        )


@catalog_app.command("generate")
def generate(
    outdir: Annotated[Path, typer.Argument(help="where the generated specs go")],
    readme: Annotated[
        Path | None,
        typer.Option("--readme", help="also rewrite this README's generated image table"),
    ] = None,
    family: FamilyOption = None,
    catalog: CheckoutOption = None,
) -> None:
    """Write every generated spec to OUTDIR/<release>/<name>.yaml (for review)."""
    from kiln.factory.catalogbuild import readme_table, state_root, status_rows, write_specs

    root = _root(catalog)
    found = _plan(root, family=family, image=None, release=None)
    _report_skips(found)
    written = write_specs(outdir, found.images)
    console.print(
        f"{len(written)} specs ({found.count_images()} images, "
        f"{len({i.entry for i in found.images})} names) in {outdir}; "
        f"{len(found.skipped)} skipped",
        markup=False,
        highlight=False,
    )
    if readme is not None:
        rows = status_rows(state_root(root), found.images)
        readme_table(readme, rows, found.skipped)
        console.print(f"image table written to {readme}", markup=False, highlight=False)


@catalog_app.command("build")
def build(
    family: FamilyOption = None,
    image: ImageOption = None,
    release: ReleaseOption = None,
    workers: Annotated[
        int,
        typer.Option(
            help="images built at once, each in its own process (this one and N-1 "
            "`kiln catalog worker` processes it starts and stops)"
        ),
    ] = 1,
    variant: Annotated[
        str | None, typer.Option("--variant", help="only this variant: runtime or dev")
    ] = None,
    no_tests: Annotated[bool, typer.Option("--no-tests", help="build only")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="leave out the tests that need the network")
    ] = False,
    retest: Annotated[
        bool,
        typer.Option(
            "--retest",
            help="run every image's tests again, even when the same image, archive and "
            "kiln passed them before (otherwise that outcome is reused)",
        ),
    ] = False,
    arm64: Annotated[
        bool,
        typer.Option(
            "--arm64",
            help="build the arm64 set instead: the checkout's hand-written images and the "
            "generated images whose table entry lists arm64, each for amd64 and arm64 "
            "(runtime variants; arm64 tested through qemu-user)",
        ),
    ] = False,
    catalog: CheckoutOption = None,
) -> None:
    """Build and test the catalog's images through the factory's Temporal workflow."""
    if workers < 1:
        raise InputError(f"--workers {workers}: at least 1")
    if variant not in (None, "runtime", "dev"):
        raise InputError(f"--variant {variant!r}: runtime or dev")
    if arm64 and (family or image or release or variant):
        raise InputError(
            "--arm64 builds its own selection: it does not combine with --family, --image, "
            "--release or --variant"
        )
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    from kiln.factory.catalogbuild import (
        ARM64_ARCHS,
        ImageOutcome,
        arm64_images,
        hand_written_jobs,
        image_label,
        jobs_for,
        layer_sharing,
        run_catalog,
        start_worker_processes,
        state_root,
        stop_worker_processes,
    )
    from kiln.factory.engine import connect
    from kiln.factory.server import endpoint_for

    root = _root(catalog)
    if arm64:
        found = _plan(root, family=None, image=None, release=None, network_tests=not offline)
        found = replace(found, images=tuple(arm64_images(found)), skipped=())
        only: dict[str, list[str]] | None = {i.name: ["runtime"] for i in found.images}
        jobs = hand_written_jobs(
            root, state_root(root), archs=ARM64_ARCHS, run_tests=not no_tests, retest=retest
        )
        jobs += jobs_for(
            state_root(root),
            found.images,
            run_tests=not no_tests,
            variants=only,
            retest=retest,
            archs=ARM64_ARCHS,
        )
    else:
        found = _plan(root, family=family, image=image, release=release, network_tests=not offline)
        only = {i.name: [variant] for i in found.images} if variant else None
        jobs = jobs_for(
            state_root(root), found.images, run_tests=not no_tests, variants=only, retest=retest
        )
    _report_skips(found)
    if not jobs:
        raise InputError("nothing to build: the selection has no image")
    endpoint = endpoint_for(root)
    err_console.print(
        f"catalog: {len(jobs)} images of {len({j.spec for j in jobs})} specs, {workers} at once "
        f"({workers} worker process{'es' if workers > 1 else ''}), "
        f"Temporal {endpoint.address}",
        markup=False,
        highlight=False,
    )

    last: list[object] = [None]

    def progress(state: dict[str, Any]) -> None:
        failed = state.get("failed") or []
        if last[0] == (state.get("done"), len(failed)):
            return
        last[0] = (state.get("done"), len(failed))
        err_console.print(
            f"  {state.get('done', 0)}/{state.get('total', 0)} done"
            + (f", failed: {', '.join(failed[-5:])}" if failed else ""),
            markup=False,
            highlight=False,
        )

    async def main() -> list[ImageOutcome]:
        client = await connect(endpoint)
        return await run_catalog(client, jobs, workers=workers, on_progress=progress, local_slots=1)

    extra = start_worker_processes(root, endpoint.address, workers - 1)
    try:
        outcomes = asyncio.run(main())
    finally:
        # a worker that died early left its images to the others: say so, with its log
        for number, process in enumerate(extra, start=1):
            if process.poll() is not None:
                err_console.print(
                    f"warning: worker process {number} exited early (exit code "
                    f"{process.returncode}); its log: "
                    f"{state_root(root) / 'workers' / f'{number}.log'}",
                    markup=False,
                    highlight=False,
                )
        stop_worker_processes(extra)
    table = Table(title="catalog build")
    columns = ("image", "release", "built", "layers", "tests", "size", "seconds", "problem")
    for column in columns:
        table.add_column(column)
    for o in outcomes:
        for v in o.variants or []:
            total = v.tests_passed + v.tests_failed
            table.add_row(
                v.label,
                o.release,
                "cache" if v.layout_cache_hit else "yes",
                f"{len(v.layers)}" + (f" ({v.layers_reused} reused)" if v.layers_reused else ""),
                f"{v.tests_passed}/{total}"
                + (f" ({'+'.join(v.archs)})" if len(v.archs) > 1 else "")
                + (" (reused)" if v.tests_cached else ""),
                f"{v.size / 1e6:.1f} MB",
                f"{o.seconds:.0f}",
                _first_line(v.failures[0]) if v.failures else "",
            )
        if o.error:
            label = image_label(o.name, o.requested)
            table.add_row(
                label, o.release, "no", "", "", "", f"{o.seconds:.0f}", _first_line(o.error)
            )
    console.print(table)
    sharing = layer_sharing(outcomes)
    console.print(
        f"layers: {sharing.layers} in {sharing.images} images, {sharing.distinct} distinct "
        f"({sharing.distinct_bytes / 1e6:.1f} of {sharing.bytes / 1e6:.1f} MB); "
        f"layer cache: {sharing.reused} reused, {sharing.layout_hits} whole layouts from the "
        "layout cache",
        markup=False,
        highlight=False,
    )
    failed = [image_label(o.name, o.requested) for o in outcomes if not o.ok]
    if failed:
        raise PolicyError(
            f"{len(failed)} of {len(outcomes)} catalog images failed", details=failed[:50]
        )


@catalog_app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="images this process builds at once")] = 1,
    catalog: CheckoutOption = None,
) -> None:
    """Serve the kiln-catalog task queue until interrupted (Ctrl-C or SIGTERM): start N
    of them for N images at once, in separate processes or on separate machines."""
    if concurrency < 1:
        raise InputError(f"--concurrency {concurrency}: at least 1")
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    import signal

    from kiln.factory.catalogbuild import serve
    from kiln.factory.engine import connect
    from kiln.factory.server import endpoint_for

    endpoint = endpoint_for(_root(catalog))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        client = await connect(endpoint)
        err_console.print(
            f"catalog worker: serving kiln-catalog on {endpoint.address}, "
            f"{concurrency} at once (Ctrl-C stops)",
            markup=False,
            highlight=False,
        )
        await serve(client, concurrency, stop)

    asyncio.run(main())


@catalog_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of objects")] = False,
    family: FamilyOption = None,
    release: ReleaseOption = None,
    catalog: CheckoutOption = None,
) -> None:
    """Per image: spec, variant, release, built, tests, CVEs (open, fixable), size, last
    change."""
    from kiln.factory.catalogbuild import state_root, status_rows

    root = _root(catalog)
    found = _plan(root, family=family, image=None, release=release)
    rows = status_rows(state_root(root), found.images)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in rows]))
        return
    table = Table(title=f"catalog: {len(rows)} images")
    for column in ("name", "variant", "release", "built", "tests", "CVEs", "size", "changed"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.name,
            r.variant,
            r.release,
            "yes" if r.built else "no",
            r.tests,
            "not scanned" if r.cves is None else f"{r.cves} ({r.cves_fixable} fixable)",
            "" if r.size is None else f"{r.size / 1e6:.1f} MB",
            r.last_change,
        )
    console.print(table)
    _report_skips(found)
