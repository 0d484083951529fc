"""Checks on built packages: kiln's ELF hardening audit and the recipe's own tests.

The audit reads every ELF file of the .debs with kiln's .deb reader and
kiln.assemble.harden's ``audit_elf`` (PIE, RELRO, BIND_NOW, stack protector,
FORTIFY, NX stack): what ``hardening-check`` reports, without running it. The
recipe's tests run on a fresh copy of the build root with the built packages unpacked
into it (``dpkg-deb -x``; maintainer scripts do not run), in the same bubblewrap
sandbox kiln tests images with: no network, read-only root.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.assemble.harden import ElfAudit, audit_elf
from kiln.debian.deb import iter_data
from kiln.errors import EnvironmentProblem
from kiln.recipes.buildroot import extract_root
from kiln.recipes.model import RecipeTest
from kiln.sandbox.bwrap import run_in_rootfs


@dataclass(frozen=True)
class RecipeTestResult:
    name: str
    passed: bool
    exit_code: int
    stdout: str
    stderr: str
    reason: str = ""


def audit_debs(debs: Sequence[Path]) -> tuple[ElfAudit, ...]:
    """The hardening properties of every ELF file in ``debs`` (debug-symbol packages skipped)."""
    found: list[ElfAudit] = []
    for deb in debs:
        package = deb.name.split("_", 1)[0]
        if package.endswith("-dbgsym"):
            continue
        for member, data in iter_data(deb, name=deb.name, read_content=_maybe_elf):
            if data is not None:
                audit = audit_elf(member.path, package, data)
                if audit is not None:
                    found.append(audit)
    return tuple(found)


def _maybe_elf(member: object) -> bool:
    mode = getattr(member, "mode", 0)
    path = str(getattr(member, "path", ""))
    return bool(mode & 0o111) or ".so" in path.rsplit("/", 1)[-1]


def run_recipe_tests(
    tests: Sequence[RecipeTest],
    debs: Sequence[Path],
    *,
    root_tarball: Path,
    work_root: Path | None = None,
    timeout: float = 120.0,
) -> tuple[RecipeTestResult, ...]:
    """Run ``tests`` with ``debs`` unpacked into a fresh copy of the build root."""
    if not tests:
        return ()
    results: list[RecipeTestResult] = []
    with tempfile.TemporaryDirectory(prefix="kiln-recipe-test-", dir=work_root) as tmp:
        root = Path(tmp) / "root"
        extract_root(root_tarball, root)
        for deb in debs:
            if deb.name.split("_", 1)[0].endswith("-dbgsym"):
                continue
            proc = subprocess.run(
                ["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, timeout=300,
                check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                raise EnvironmentProblem(f"dpkg-deb -x {deb.name} failed: {proc.stderr.decode()}")
        for test in tests:
            run = run_in_rootfs(root, list(test.run), uid=65532, gid=65532, env={}, timeout=timeout)
            reason = ""
            if run.timed_out:
                reason = f"timed out after {timeout:.0f} s"
            elif run.exit_code != 0:
                reason = f"exit code {run.exit_code}"
            elif test.expect_stdout is not None and run.stdout != test.expect_stdout:
                reason = f"stdout {run.stdout!r} != expected {test.expect_stdout!r}"
            results.append(
                RecipeTestResult(
                    test.name, not reason, run.exit_code, run.stdout, run.stderr, reason
                )
            )
    return tuple(results)
