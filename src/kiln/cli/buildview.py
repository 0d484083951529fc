"""How ``kiln build``, ``kiln test`` and ``kiln publish`` show what the pipeline did.

The pipeline (``kiln.pipeline.build``, ``kiln.pipeline.imagetest``) prints nothing; it
reports to a listener or returns results, and these functions render them on the
command's consoles.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from kiln.cli.app import console, err_console

if TYPE_CHECKING:
    from kiln.assemble import HardeningReport
    from kiln.errors import EnvironmentProblem
    from kiln.pipeline import CurrentLock
    from kiln.pipeline.build import BuiltVariant
    from kiln.pipeline.imagetest import LayoutCheck
    from kiln.spec import LoadedSpec

#: where ``kiln build`` writes layouts, and ``kiln test`` and ``kiln publish`` find them
DEFAULT_OUTPUT = Path("out")


def split_csv(values: list[str] | None) -> list[str]:
    """Repeated options that also take commas (``--arch amd64,arm64 --arch riscv64``)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


class ConsoleBuildListener:
    """Prints what ``build_spec`` observed: the lock's fate, then each built variant."""

    def lock_settled(self, item: LoadedSpec, current: CurrentLock) -> None:
        """Say in one line what happened to the lock (written, drifted, unchecked)."""
        if current.written:
            console.print(f"locking {item.path} ({current.written})")
        if current.drift:
            err_console.print(
                f"warning: {current.drift.summary()}; building it as locked "
                "(--refresh relocks first, `kiln lock --check --show` lists every change)"
            )
        if current.unchecked:
            err_console.print(f"warning: {item.lock_path}: {current.unchecked}")

    def variant_built(self, built: BuiltVariant) -> None:
        """The layout, digest and time of one variant, and its hardening table."""
        image = built.image
        elapsed = (built.finished_on - built.started_on).total_seconds()
        console.print(
            f"built {built.label}:{image.tag} → {image.layout} "
            f"({image.index_digest[:19]}, {elapsed:.2f}s)"
        )
        console.print(hardening_table(image.reports, title=f"{built.label} hardening"))


def summary_table(built: Sequence[BuiltVariant]) -> Table:
    """One row per built platform: its size in packages, files and bytes."""
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


def show_check(check: LayoutCheck) -> None:
    """The tests of one tested platform, each failure's output, and the report's path."""
    from kiln.sandbox import failure_text  # noqa: PLC0415 (the sandbox loads when tests ran)

    table = Table(title=f"{check.name} ({check.arch})")
    table.add_column("test")
    table.add_column("status")
    table.add_column("ms", justify="right")
    for o in check.outcomes:
        colour = "green" if o.status == "passed" else "red"
        table.add_row(o.test.name, f"[{colour}]{o.status}[/]", str(o.stop_ms - o.start_ms))
    console.print(table)
    if not check.tests:
        console.print(f"[yellow]{check.name}: the image carries no tests[/]")
    for o in check.outcomes:
        if o.status != "passed":
            err_console.print(failure_text(o), markup=False, highlight=False)
    console.print(f"report: {check.report_path}")


def warn_untestable(arch: str, problem: EnvironmentProblem) -> None:
    """A platform this machine cannot run is published without a test report: say so."""
    err_console.print(
        f"warning: {problem}; linux/{arch} is published without a test report",
        markup=False,
        highlight=False,
    )
