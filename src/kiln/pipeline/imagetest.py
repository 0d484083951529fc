"""Test a built layout: unpack one platform, run the image's stored tests, write CTRF.

``kiln test`` and ``kiln publish`` (and the factory) run the same flow: find the
layouts of a spec (or take a layout), unpack each requested platform into a scratch
directory next to it, run the tests the image carries in bubblewrap (another
architecture's through qemu-user), and write the CTRF report into the layout
(``ctrf-report.json`` for this machine's architecture, ``ctrf-report-<arch>.json`` for
another). The caller renders the ``LayoutCheck``; nothing here prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import EnvironmentProblem, InputError, PolicyError

if TYPE_CHECKING:
    from kiln.pipeline.build import BuiltVariant
    from kiln.sandbox import TestOutcome

# The sandbox and the spec loader load inside the functions, so that importing this
# module (kiln test's command module does) stays cheap.
# ruff: noqa: PLC0415

CTRF_REPORT = "ctrf-report.json"


def report_name(arch: str) -> str:
    """The CTRF report's file name in a layout: this machine's arch's, or another's."""
    from kiln.sandbox.unpack import host_arch

    return CTRF_REPORT if arch == host_arch() else f"ctrf-report-{arch}.json"


def is_layout(path: Path) -> bool:
    """Whether ``path`` is an OCI image layout directory (it has an ``oci-layout`` file)."""
    return path.is_dir() and (path / "oci-layout").is_file()


def layouts_for(target: Path, output: Path) -> list[Path]:
    """The layouts to test: ``target`` itself, or every built variant of the spec ``target``.

    Raises ``InputError`` when ``target`` is neither, or the spec has no built layout
    under ``output``.
    """
    if is_layout(target):
        return [target]
    if not target.is_file():
        raise InputError(f"{target}: neither an OCI image layout directory nor a spec file")
    from kiln.spec import load_spec

    spec = load_spec(target).spec
    found = [
        output / name
        for name in (spec.name, *(f"{spec.name}-{v}" for v in spec.variants))
        if is_layout(output / name)
    ]
    if not found:
        raise InputError(
            f"{target}: no built layout for image {spec.name!r} under {output}",
            hint=f"run: kiln build {target}",
        )
    return found


@dataclass(frozen=True)
class LayoutCheck:
    """One platform of one layout tested: the outcomes and where the report went."""

    name: str  # the image's name from its embedded facts, else the layout directory's
    arch: str
    tests: int  # how many tests the image carries for this platform
    outcomes: tuple[TestOutcome, ...]
    report_path: Path

    @property
    def passed(self) -> bool:
        """True if every test passed (an image without tests passes)."""
        return all(o.status == "passed" for o in self.outcomes)


def check_layout(layout: Path, *, arch: str, tag: str | None) -> LayoutCheck:
    """Unpack ``layout`` for ``arch``, run its stored tests and write the CTRF report."""
    from kiln.sandbox import (
        ctrf_report,
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
    return LayoutCheck(name, arch, len(tests), tuple(outcomes), report_path)


def check_layouts(
    layouts: Sequence[Path],
    archs: Sequence[str],
    *,
    tag: str | None,
    on_checked: Callable[[LayoutCheck], None],
) -> None:
    """Check every layout on every arch; raise ``PolicyError`` naming each that failed."""
    failed = []
    for layout in layouts:
        for one in archs:
            check = check_layout(layout, arch=one, tag=tag)
            on_checked(check)
            if not check.passed:
                failed.append(f"{layout} ({one})")
    if failed:
        raise PolicyError("image tests failed", details=failed)


def check_every_platform(
    built: BuiltVariant,
    *,
    on_checked: Callable[[LayoutCheck], None],
    on_untestable: Callable[[str, EnvironmentProblem], None],
) -> dict[str, dict[str, Any]]:
    """Test a built variant on every platform it has, before it is published.

    Returns each tested platform's CTRF report (as written). A platform this machine
    cannot run (no qemu-user for it) is skipped and reported to ``on_untestable``; a
    failed test raises ``PolicyError`` (nothing is pushed).
    """
    from kiln.isolation.emulation import binfmt_rule

    reports: dict[str, dict[str, Any]] = {}
    layout = built.image.layout
    for image in built.image.images:
        try:
            binfmt_rule(image.arch, purpose=f"testing the {image.arch} image {built.label}")
        except EnvironmentProblem as exc:
            on_untestable(image.arch, exc)
            continue
        check = check_layout(layout, arch=image.arch, tag=built.image.tag)
        on_checked(check)
        if not check.passed:
            raise PolicyError(
                f"{built.label}: image tests failed on linux/{image.arch}; nothing was pushed"
            )
        # our own report, just written: read back as the attestation will carry it
        reports[image.arch] = json.loads(check.report_path.read_bytes())
    return reports
