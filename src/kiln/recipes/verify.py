"""Independent rebuild verification: compare rebuilt .debs with the distro's, by sha256.

A reproducible package (https://reproducible-builds.org/docs/definition/) rebuilt
from the same source in an equivalent environment gives .debs whose sha256 equals the
archive's. When one differs, the comparison says what differs member by member
(control fields, each data member's metadata and content digest) with kiln's own .deb
reader and, when ``diffoscope`` (https://diffoscope.org) is installed, also writes its
text report for the pair, bounded in size (``--max-report-size``) and time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.debian.deb import read_deb
from kiln.fileio import sha256_file

DIFFOSCOPE_TIMEOUT = 300.0  # seconds per pair; diffoscope's own --timeout, then a kill
DIFFOSCOPE_MAX_REPORT = 2_000_000  # bytes of text report kept per pair
_MAX_DIFFERENCES = 50


@dataclass(frozen=True)
class DiffoscopeReport:
    """Where diffoscope's text report of one mismatching pair went, and how it ended."""

    path: Path
    complete: bool  # False: timed out or failed; the file holds what it wrote and why
    note: str = ""


@dataclass(frozen=True)
class DebComparison:
    """One binary package: ours vs the distro's."""

    package: str
    ours: str  # sha256, "" when we did not build it
    theirs: str  # sha256, "" when the distro has no such .deb
    differences: tuple[str, ...] = ()
    diffoscope: DiffoscopeReport | None = None  # when diffoscope ran on the pair

    @property
    def identical(self) -> bool:
        return bool(self.ours) and self.ours == self.theirs


@dataclass(frozen=True)
class RebuildComparison:
    source: str
    version: str
    packages: tuple[DebComparison, ...]
    diffoscope_available: bool
    skipped: tuple[str, ...] = ()  # built but not comparable (e.g. -dbgsym packages)
    build_seconds: float = 0.0

    @property
    def identical(self) -> bool:
        return bool(self.packages) and all(p.identical for p in self.packages)

    @property
    def matched(self) -> int:
        return sum(p.identical for p in self.packages)

    @property
    def rate(self) -> float:
        if not self.packages:
            return 0.0
        return self.matched / len(self.packages)


def find_diffoscope() -> str | None:
    """diffoscope's path when it is installed (Debian: diffoscope-minimal), else None."""
    return shutil.which("diffoscope")


def compare_debs(
    source: str,
    version: str,
    ours: Mapping[str, Path],
    theirs: Mapping[str, Path],
    *,
    use_diffoscope: bool = True,
    skipped: tuple[str, ...] = (),
    report_dir: Path | None = None,
    diffoscope: str | None = None,
    diffoscope_timeout: float = DIFFOSCOPE_TIMEOUT,
) -> RebuildComparison:
    """Compare ``ours`` and ``theirs`` (binary package name -> .deb path).

    Each mismatching pair gets the member-by-member differences and, when diffoscope
    is available (``diffoscope`` or else on PATH) and ``report_dir`` is given, a text
    report ``<report_dir>/<package>.diffoscope.txt`` bounded in size and time.
    """
    tool = (diffoscope or find_diffoscope()) if use_diffoscope else None
    results = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        ours_sha = sha256_file(a) if a else ""
        theirs_sha = sha256_file(b) if b else ""
        if a is None or b is None or ours_sha == theirs_sha:
            missing = () if a and b else (("not rebuilt",) if a is None else ("not in the distro",))
            results.append(DebComparison(name, ours_sha, theirs_sha, missing))
            continue
        report = None
        if tool is not None and report_dir is not None:
            target = report_dir / f"{name}.diffoscope.txt"
            report = run_diffoscope(tool, b, a, target, timeout=diffoscope_timeout)
        results.append(DebComparison(name, ours_sha, theirs_sha, member_differences(b, a), report))
    return RebuildComparison(source, version, tuple(results), tool is not None, skipped)


def member_differences(theirs: Path, ours: Path) -> tuple[str, ...]:
    """What differs between two .debs, member by member (control, then data)."""
    a = read_deb(theirs, name=theirs.name)
    b = read_deb(ours, name=ours.name)
    found: list[str] = []
    fields_a, fields_b = dict(a.control.stanza()), dict(b.control.stanza())
    for key in sorted(set(fields_a) | set(fields_b)):
        if fields_a.get(key) != fields_b.get(key):
            found.append(f"control {key}: {fields_a.get(key)!r} != {fields_b.get(key)!r}")
    members_a = {m.path: m for m in a.members}
    members_b = {m.path: m for m in b.members}
    for path in sorted(set(members_a) | set(members_b)):
        ma, mb = members_a.get(path), members_b.get(path)
        if ma is None or mb is None:
            found.append(f"{path}: only in {'ours' if ma is None else 'theirs'}")
            continue
        meta_a = (ma.type, ma.mode, ma.uid, ma.gid, ma.mtime, ma.link_target, ma.size)
        meta_b = (mb.type, mb.mode, mb.uid, mb.gid, mb.mtime, mb.link_target, mb.size)
        if meta_a != meta_b:
            found.append(f"{path}: metadata {meta_a} != {meta_b}")
        elif ma.is_file and a.contents.get(path) != b.contents.get(path):
            found.append(f"{path}: content differs")
    if not found:
        found.append("same members and contents; the archive encoding differs")
    return tuple(found[:_MAX_DIFFERENCES])


def diffoscope_argv(
    diffoscope: str, theirs: Path, ours: Path, report: Path, *, timeout: float
) -> list[str]:
    """diffoscope's command line: text report to a file, bounded size, its own timeout."""
    return [
        diffoscope,
        "--text", str(report),
        "--text-color", "never",
        "--max-report-size", str(DIFFOSCOPE_MAX_REPORT),
        "--max-text-report-size", str(DIFFOSCOPE_MAX_REPORT),
        "--timeout", str(int(timeout)),
        "--no-progress",
        str(theirs), str(ours),
    ]  # fmt: skip


def run_diffoscope(
    diffoscope: str, theirs: Path, ours: Path, report: Path, *, timeout: float = DIFFOSCOPE_TIMEOUT
) -> DiffoscopeReport:
    """Run diffoscope on one pair (Debian's first); exit 1 means "differences found"."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    argv = diffoscope_argv(diffoscope, theirs, ours, report, timeout=timeout)
    try:
        # diffoscope's --timeout stops new comparisons; the kill is the backstop.
        proc = subprocess.run(argv, capture_output=True, timeout=timeout + 60, check=False)
    except subprocess.TimeoutExpired:
        return _failed(report, f"diffoscope did not finish within {timeout + 60:.0f} s")
    except OSError as exc:
        return _failed(report, f"diffoscope could not run: {exc}")
    if proc.returncode == 0:
        note = "diffoscope found no difference (only the archive bytes differ)"
        return _noted(report, note, complete=True)
    if proc.returncode != 1 or not report.is_file():
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        return _failed(report, f"diffoscope failed (exit {proc.returncode}): {' | '.join(tail)}")
    return DiffoscopeReport(report, complete=True)


def _failed(report: Path, note: str) -> DiffoscopeReport:
    return _noted(report, note, complete=False)


def _noted(report: Path, note: str, *, complete: bool) -> DiffoscopeReport:
    with report.open("a", encoding="utf-8") as handle:
        handle.write(f"\n[kiln] {note}\n")
    return DiffoscopeReport(report, complete=complete, note=note)


def debs_by_package(paths: Sequence[Path]) -> dict[str, Path]:
    """``name_version_arch.deb`` files keyed by package name."""
    return {p.name.split("_", 1)[0]: p for p in paths if p.suffix == ".deb"}
