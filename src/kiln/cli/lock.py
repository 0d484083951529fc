"""``kiln lock`` and ``kiln fetch``: resolve specs into locks; download locked .debs."""

# ruff: noqa: PLC0415
# (the resolver and the repository client load inside the commands that use them)

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from kiln.cli.app import app, console
from kiln.errors import PolicyError

if TYPE_CHECKING:
    from kiln.pipeline import ArchiveAccess, LockResult
    from kiln.resolve.lockfile import Lock
    from kiln.spec import LoadedSpec

SpecArgs = Annotated[list[Path], typer.Argument(help="image spec files (images/<name>.yaml)")]


@app.command()
def lock(
    specs: SpecArgs,
    check: Annotated[
        bool, typer.Option("--check", help="exit 1 and show the changes if a lock is stale")
    ] = False,
    show: Annotated[
        bool, typer.Option("--show", help="print the existing lock as a table; resolve nothing")
    ] = False,
    why: Annotated[
        str | None, typer.Option("--why", help="show the chain that pulls in this package")
    ] = None,
    max_age: Annotated[
        float, typer.Option(help="trust cached signed indexes checked less than N seconds ago")
    ] = 0.0,
) -> None:
    """Resolve each spec against the signed Debian indexes and write <spec>.lock.json."""
    from kiln.resolve.lockfile import read_lock, write_lock
    from kiln.spec import load_spec

    loaded = [load_spec(path) for path in specs]
    if show:
        for item in loaded:
            _show(read_lock(item.lock_path), item)
        return
    from kiln.pipeline import ArchiveAccess

    archive = ArchiveAccess.from_environment(max_age=max_age)
    stale: list[str] = []
    for item in loaded:
        started = time.perf_counter()
        result = _lock_one(item, archive)
        elapsed = time.perf_counter() - started
        if why:
            _why(result, why)
        if check:
            changes = _changes(item, result.lock)
            if changes:
                stale.append(str(item.lock_path))
                console.print(f"[yellow]stale[/] {item.lock_path}:")
                for line in changes:
                    console.print(f"  {line}", markup=False, highlight=False)
            else:
                console.print(f"[green]up to date[/] {item.lock_path}")
            continue
        written = write_lock(result.lock, item.lock_path)
        state = "wrote" if written else "unchanged"
        count = len(result.lock.all_packages())
        console.print(
            f"{state} {item.lock_path}: {count} packages, "
            f"{len(item.spec.variant_names())} variants x {len(item.spec.archs)} archs "
            f"({elapsed:.2f}s)"
        )
    if stale:
        raise PolicyError(
            f"{len(stale)} lock(s) stale: {', '.join(stale)}", hint="run `kiln lock` to update"
        )


def _lock_one(item: LoadedSpec, archive: ArchiveAccess) -> LockResult:
    from kiln.pipeline import lock_spec

    return lock_spec(item, archive.snapshot_for(item.spec))


def _changes(item: LoadedSpec, fresh: Lock) -> list[str]:
    from kiln.resolve.lockfile import diff_locks, read_lock

    if not item.lock_path.exists():
        return ["no lock file yet"]
    return diff_locks(read_lock(item.lock_path), fresh)


def _why(result: LockResult, name: str) -> None:
    for (variant, arch), resolution in sorted(result.resolutions.items()):
        if name not in resolution.names:
            console.print(f"{variant}/{arch}: {name} is not in the set")
            continue
        chain = " → ".join(
            f"{p.package}" if p.parent is None else f"({p.relation}) {p.package}"
            for p in resolution.why(name)
        )
        console.print(f"{variant}/{arch}: {chain}", markup=False, highlight=False)


def _show(lock_: Lock, item: LoadedSpec) -> None:
    for variant, arches in sorted(lock_.variants.items()):
        for arch, arch_lock in sorted(arches.items()):
            table = Table(title=f"{lock_.image} {variant}/{arch} ({lock_.distro})")
            for column in ("package", "version", "source", "suite", "size"):
                table.add_column(column, justify="right" if column == "size" else "left")
            total = 0
            for p in arch_lock.packages:
                total += p.size
                source = p.source
                if p.source_version != p.version:
                    source += f" {p.source_version}"
                table.add_row(p.name, p.version, source, p.suite, _kib(p.size))
            table.caption = f"{len(arch_lock.packages)} packages, {_kib(total)} of .debs" + (
                f"; {len(arch_lock.cut_edges)} edges cut" if arch_lock.cut_edges else ""
            )
            console.print(table)
    if item.sha256 != lock_.spec_sha256:
        console.print(f"[yellow]note:[/] {item.path} changed since this lock was written")


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


@app.command()
def fetch(specs: SpecArgs) -> None:
    """Download the locked .deb files into the cache, verifying size and sha256 first."""
    from kiln.debian import get_distro
    from kiln.pipeline import ArchiveAccess, locked_to_binary
    from kiln.resolve.lockfile import read_lock
    from kiln.spec import load_spec

    archive = ArchiveAccess.from_environment()
    for item in specs:
        loaded = load_spec(item)
        lock_ = read_lock(loaded.lock_path)
        packages = [locked_to_binary(p) for p in lock_.all_packages()]
        started = time.perf_counter()
        paths = archive.fetch(get_distro(lock_.distro), packages)
        elapsed = time.perf_counter() - started
        size = sum(p.size for p in packages)
        console.print(
            f"{loaded.path}: {len(paths)} .debs verified in {archive.cache.root} "
            f"({size / 1024**2:.1f} MiB, {elapsed:.2f}s)"
        )
