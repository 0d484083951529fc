"""``kiln build SPEC...`` and ``kiln test SPEC|LAYOUT``: thin adapters over the pipeline.

The work happens in ``kiln.pipeline.build`` (spec + lock -> layouts) and
``kiln.sandbox``. The CTRF report is written into the layout directory
(``out/<name>/ctrf-report.json``, next to ``hardening.json``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from kiln.cli.app import app, console, err_console
from kiln.errors import InputError, PolicyError, TransportError

if TYPE_CHECKING:
    from kiln.assemble import BuiltImage, Compression, HardeningReport
    from kiln.pipeline import CurrentLock, LockPolicy, Repository
    from kiln.resolve.lockfile import Lock
    from kiln.spec import LoadedSpec

# Assembly, the sandbox, the repository client, specs and locks load inside the
# commands, so that every kiln command (kiln verify too) starts without them.
# ruff: noqa: PLC0415

CTRF_REPORT = "ctrf-report.json"
DEFAULT_OUTPUT = Path("out")

# ----------------------------------------------------------------------------- kiln build


def _csv(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _lock_for_build(item: LoadedSpec, repo: Repository, options: BuildOptions) -> CurrentLock:
    """The lock under the options' policy; says in one line what happened to it."""
    from kiln.pipeline import current_lock

    policy: LockPolicy = "frozen" if options.frozen else "refresh" if options.refresh else "keep"
    result = current_lock(item, repo, policy)
    if result.written:
        console.print(f"locking {item.path} ({result.written})")
    if result.drift:
        err_console.print(
            f"warning: {result.drift.summary()}; building it as locked "
            "(--refresh relocks first, `kiln lock --check --show` lists every change)"
        )
    if result.unchecked:
        err_console.print(f"warning: {item.lock_path}: {result.unchecked}")
    return result


def _summary_table(built: Sequence[BuiltVariant]) -> Table:
    table = Table(title="images")
    for column in ("image", "tag", "arch", "packages", "files", "compressed", "uncompressed"):
        table.add_column(column, justify="left" if column in ("image", "tag", "arch") else "right")
    for b in built:
        for arch_image in b.image.images:
            table.add_row(
                b.label,
                b.image.tag,
                arch_image.arch,
                str(len(b.lock.packages(b.variant, arch_image.arch))),
                str(arch_image.files),
                _mib(sum(layer.size for layer in arch_image.layers)),
                _mib(sum(layer.uncompressed_size for layer in arch_image.layers)),
            )
    return table


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


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
    options = BuildOptions(
        output=output,
        archs=tuple(_csv(arch)),
        variants=tuple(_csv(variant)),
        frozen=frozen,
        refresh=refresh,
        compression=_compression(compression),
        oci_archive=tar,
        docker_archive=docker_archive,
        cache=not no_cache,
    )
    from kiln.pipeline import Repository
    from kiln.spec import load_spec

    repo = Repository.from_environment()
    built = [b for path in specs for b in build_spec(load_spec(path), repo, options)]
    console.print(_summary_table(built))


def _compression(text: str) -> Compression:
    match text:
        case "gzip" | "zstd" | "none":
            return text
        case _:
            raise InputError(f"--compression {text!r}: use gzip, zstd or none")


@dataclass(frozen=True)
class BuildOptions:
    """What ``kiln build`` (and ``kiln publish``) was asked for."""

    output: Path = DEFAULT_OUTPUT
    archs: tuple[str, ...] = ()  # empty: every arch of the spec
    variants: tuple[str, ...] = ()  # empty: every variant
    frozen: bool = False
    refresh: bool = False  # relock against the archive before building
    compression: Compression = "gzip"
    oci_archive: bool = False
    docker_archive: bool = False
    cache: bool = True


@dataclass(frozen=True)
class BuiltVariant:
    """One built variant and what the orchestrator observed while building it."""

    loaded: LoadedSpec
    lock: Lock
    variant: str
    image: BuiltImage
    started_on: dt.datetime
    finished_on: dt.datetime

    @property
    def label(self) -> str:
        return self.loaded.spec.label(self.variant)


def build_spec(item: LoadedSpec, repo: Repository, options: BuildOptions) -> list[BuiltVariant]:
    """Lock (as needed), fetch and build every requested variant of one spec."""
    from kiln.assemble.cache import LayoutCache
    from kiln.debian import get_distro
    from kiln.pipeline import locked_to_binary
    from kiln.pipeline.build import build_variant
    from kiln.progress import ConsoleProgress

    cache = LayoutCache(repo.cache.root / "layouts") if options.cache else None
    progress = ConsoleProgress(err_console)
    if options.frozen and options.refresh:
        raise InputError("--frozen and --refresh contradict each other: choose one")
    current = _lock_for_build(item, repo, options)
    lock = current.lock
    distro = get_distro(lock.distro)
    unknown = sorted(set(options.archs) - set(item.spec.archs))
    if unknown:
        raise InputError(f"{item.path}: the spec does not build {', '.join(unknown)}")
    archs = [a for a in item.spec.archs if not options.archs or a in options.archs]
    built = []
    for name in item.spec.variant_names():
        if options.variants and name not in options.variants:
            continue
        started = dt.datetime.now(dt.UTC)
        label = item.spec.label(name)
        count = sum(len(lock.packages(name, a)) for a in archs)
        with progress.phase(f"fetching {count} .debs and assembling {label} ({', '.join(archs)})"):
            try:
                debs: dict[str, Sequence[Path]] = {
                    a: repo.fetch(distro, [locked_to_binary(p) for p in lock.packages(name, a)])
                    for a in archs
                }
            except TransportError as exc:
                if not current.drift:
                    raise
                raise TransportError(
                    exc.message,
                    exc.location,
                    hint="the lock is behind the archive, whose pool drops superseded .debs: "
                    "build with --refresh (or `kiln lock` and review the change)",
                    details=exc.details,
                ) from exc
            image = build_variant(
                item,
                lock,
                name,
                debs,
                output=options.output,
                compression=options.compression,
                oci_archive=options.oci_archive,
                docker_archive=options.docker_archive,
                cache=cache,
                mirrors=repo.mirrors,
            )
        done = BuiltVariant(item, lock, name, image, started, dt.datetime.now(dt.UTC))
        elapsed = (done.finished_on - done.started_on).total_seconds()
        console.print(
            f"built {done.label}:{image.tag} → {image.layout} "
            f"({image.index_digest[:19]}, {elapsed:.2f}s)"
        )
        console.print(hardening_table(image.reports, title=f"{done.label} hardening"))
        built.append(done)
    return built


# -------------------------------------------------------------------------- rendering


def hardening_table(reports: Sequence[HardeningReport], title: str = "hardening") -> Table:
    """One row per architecture: how many ELF files have each protection."""
    table = Table(title=title)
    table.caption = "SSP: stack protector; RELRO: full RELRO; NOW: BIND_NOW; PIE: executables"
    for column in (
        "arch",
        "variant",
        "ELF",
        "PIE",
        "RELRO",
        "NOW",
        "SSP",
        "FORTIFY",
        "NX",
        "setid",
        "pruned",
    ):
        table.add_column(column, justify="right" if column not in ("arch", "variant") else "left")
    for r in reports:
        s = r.summary()
        execs = s["executables"]
        table.add_row(
            r.arch,
            r.variant,
            str(s["elf_files"]),
            f"{s['pie']}/{execs}",
            str(s["relro_full"]),
            str(s["bind_now"]),
            str(s["stack_protector"]),
            str(s["fortify"]),
            str(s["nx_stack"]),
            str(s["setid_stripped"]),
            str(s["pruned_files"]),
        )
    return table


# ------------------------------------------------------------------------------ kiln test


def _is_layout(path: Path) -> bool:
    return path.is_dir() and (path / "oci-layout").is_file()


def _layouts_for(target: Path, output: Path) -> list[Path]:
    if _is_layout(target):
        return [target]
    if not target.is_file():
        raise InputError(f"{target}: neither an OCI image layout directory nor a spec file")
    from kiln.spec import load_spec

    spec = load_spec(target).spec
    found = [
        output / name
        for name in (spec.name, *(f"{spec.name}-{v}" for v in spec.variants))
        if _is_layout(output / name)
    ]
    if not found:
        raise InputError(
            f"{target}: no built layout for image {spec.name!r} under {output}",
            hint=f"run: kiln build {target}",
        )
    return found


def report_name(arch: str) -> str:
    """The CTRF report's file name in a layout: this machine's arch's, or another's."""
    from kiln.sandbox.unpack import host_arch

    return CTRF_REPORT if arch == host_arch() else f"ctrf-report-{arch}.json"


def check_layout(layout: Path, *, arch: str, tag: str | None) -> bool:
    """Unpack ``layout`` for ``arch``, run its stored tests, write CTRF; True if all pass."""
    from kiln.sandbox import (
        ctrf_report,
        failure_text,
        remove_rootfs,
        resolve_image,
        run_tests,
        tests_of,
        unpack_image,
        write_ctrf,
    )
    from kiln.sandbox.unpack import read_embedded_facts

    image = resolve_image(layout, tag=tag, arch=arch)
    scratch = layout.parent / f".{layout.name}.test-{os.getpid()}"
    try:
        unpacked = unpack_image(image, scratch / "rootfs")
        facts = read_embedded_facts(unpacked.rootfs) or {}
        tests = tests_of(unpacked)
        outcomes = run_tests(unpacked, tests)
    finally:
        remove_rootfs(scratch)
    name = str(facts.get("name") or layout.name)
    report = ctrf_report(
        outcomes,
        app_name=name,
        extra={"arch": arch, "variant": facts.get("variant"), "manifest": image.manifest_digest},
    )
    report_path = layout / report_name(arch)
    write_ctrf(report_path, report)
    table = Table(title=f"{name} ({arch})")
    table.add_column("test")
    table.add_column("status")
    table.add_column("ms", justify="right")
    for o in outcomes:
        colour = "green" if o.status == "passed" else "red"
        table.add_row(o.test.name, f"[{colour}]{o.status}[/]", str(o.stop_ms - o.start_ms))
    console.print(table)
    if not tests:
        console.print(f"[yellow]{name}: the image carries no tests[/]")
    for o in outcomes:
        if o.status != "passed":
            err_console.print(failure_text(o), markup=False, highlight=False)
    console.print(f"report: {report_path}")
    return all(o.status == "passed" for o in outcomes)


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
    from kiln.sandbox.unpack import host_arch

    archs = _csv(arch) or [host_arch()]
    failed = []
    for layout in _layouts_for(target, output):
        for one in archs:
            if not check_layout(layout, arch=one, tag=tag):
                failed.append(f"{layout} ({one})")
    if failed:
        raise PolicyError("image tests failed", details=failed)
