"""Benchmark source builds and measure how much of an image rebuilds bit-for-bit.

Run: ``.venv/bin/python bench/source.py [--verify-sources] [options]``.

Phases (default: jq, and zlib with the ``nocheck`` build profile), each in a fresh
temporary cache so "cold" means cold: fetch (signed Sources index + verified files),
fetch again (cached), build-root creation (mmdebstrap of a buildd chroot plus the
Build-Depends), the same root again (cached by digest), and the unpatched build in the
sandbox compared with Debian's .debs (what ``kiln rebuild --verify`` does).

``--verify-sources`` then rebuilds the source packages an image's lock records
(default ``images/python.lock.json``, each package's ``source``/``source_version``),
smallest source first (size of its files in the signed Sources index), within a
per-package build budget and a total budget, and prints one row per source package:
.debs matched/total and build time, or why it was skipped (too large, not fetchable,
build failed with the log's tail, out of time). The summary gives the rate over .debs
(identical / compared) and over packages (fully reproducible / attempted). While one
package builds, the next one's build root is created (both wall times are printed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kiln.debian import Cache, get_distro
from kiln.debian.distro import Distro
from kiln.debian.source_index import SourcePackage
from kiln.errors import KilnError, RemoteContentError
from kiln.pipeline.archive import ArchiveAccess
from kiln.pipeline.source import SourceBuilder
from kiln.recipes.build import BuildError
from kiln.recipes.buildroot import BuildRoot
from kiln.recipes.verify import RebuildComparison
from kiln.resolve.lockfile import read_lock
from kiln.sandbox.unpack import host_arch

_T = TypeVar("_T")
ROOT = Path(__file__).resolve().parent.parent


def _timed(call: Callable[[], _T]) -> tuple[_T, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


@contextmanager
def _cold_builder() -> Iterator[SourceBuilder]:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-cold-") as tmp:
        archive = ArchiveAccess.from_environment()
        archive.cache = Cache(Path(tmp))
        yield SourceBuilder(archive)


@dataclass(frozen=True)
class PhaseRow:
    package: str
    version: str
    profiles: tuple[str, ...]
    fetch_cold: float
    fetch_cached: float
    root_cold: float
    root_cached: float
    build: float
    result: str


def run_phases(name: str, profiles: tuple[str, ...], distro: Distro, out: Path) -> PhaseRow:
    """Time one package's phases in a fresh cache (the newest version this mirror serves)."""
    arch = host_arch()
    with _cold_builder() as cold:
        started = time.perf_counter()
        universe = cold.universe(distro, (name,))
        newest = universe.newest(name)
        fetched = None
        missing: list[str] = []
        for candidate in universe.versions(name):
            if candidate.version in missing:
                continue
            try:
                fetched, _ = cold.fetch(distro, name, version=candidate.version)
                break
            except RemoteContentError:
                missing.append(candidate.version)
        fetch_cold = time.perf_counter() - started
        if fetched is None:
            return PhaseRow(
                name,
                newest.version,
                profiles,
                fetch_cold,
                0,
                0,
                0,
                0,
                f"not fetchable here: {', '.join(missing)}",
            )
        package = fetched.package
        note = f" (newest {newest.version} not fetchable here)" if missing else ""
        _, fetch_cached = _timed(lambda: cold.fetch(distro, name, version=package.version))
        root, root_cold = _timed(lambda: cold.build_root(distro, arch, package, profiles))
        again, root_cached = _timed(lambda: cold.build_root(distro, arch, package, profiles))
        assert root.created, "a fresh cache must create the root"
        assert not again.created, "the second lookup must hit the cache"
        try:
            comparison = cold.rebuild_verify(
                name,
                arch=arch,
                out_dir=out / name,
                nocheck="nocheck" in profiles,
                profiles=profiles,
                version=package.version,
            )
        except KilnError as exc:
            return PhaseRow(
                name,
                package.version,
                profiles,
                fetch_cold,
                fetch_cached,
                root_cold,
                root_cached,
                0.0,
                f"build failed: {_first_line(exc)}",
            )
    if not any(p.theirs for p in comparison.packages):
        result = f"not compared: Debian's binaries are of {newest.version}{note}"
    else:
        result = f"{comparison.matched}/{len(comparison.packages)} identical{note}"
    return PhaseRow(
        name,
        package.version,
        profiles,
        fetch_cold,
        fetch_cached,
        root_cold,
        root_cached,
        comparison.build_seconds,
        result,
    )


def _phase_cells(r: PhaseRow) -> list[str]:
    return [
        r.package,
        r.version,
        ",".join(r.profiles) or "-",
        f"{r.fetch_cold:.1f} s",
        f"{r.fetch_cached:.2f} s",
        f"{r.root_cold:.0f} s",
        f"{r.root_cached:.3f} s",
        f"{r.build:.0f} s",
        r.result,
    ]


_PHASE_HEADER = [
    "package",
    "version",
    "profiles",
    "fetch cold",
    "fetch cached",
    "root cold",
    "root cached",
    "build",
    "rebuild vs Debian",
]


@dataclass(frozen=True)
class VerifyRow:
    source: str
    version: str
    size: int
    matched: int = 0
    compared: int = 0
    fetch_seconds: float = 0.0
    root_seconds: float = 0.0
    build_seconds: float = 0.0
    skipped: str = ""  # why it was not (fully) attempted; "" when it was compared
    attempted: bool = False

    def cells(self) -> list[str]:
        size = f"{self.size / 1e6:.2f} MB" if self.size else "-"
        fetch = f"{self.fetch_seconds:.1f} s" if self.fetch_seconds else "-"
        root = f"{self.root_seconds:.0f} s" if self.root_seconds else "-"
        if self.skipped:
            return [self.source, self.version, size, "-", fetch, root, "-", self.skipped]
        verdict = "reproducible" if self.matched == self.compared else "differs"
        return [
            self.source,
            self.version,
            size,
            f"{self.matched}/{self.compared}",
            fetch,
            root,
            f"{self.build_seconds:.0f} s",
            verdict,
        ]


def lock_sources(lock_path: Path) -> dict[str, str]:
    """Source package -> version, over every variant and architecture of the lock."""
    lock = read_lock(lock_path)
    found: dict[str, str] = {}
    for arches in lock.variants.values():
        for arch_lock in arches.values():
            for package in arch_lock.packages:
                found[package.source] = package.source_version
    return dict(sorted(found.items()))


def _source_size(package: SourcePackage) -> int:
    return sum(f.size for f in package.files)


def verify_sources(
    builder: SourceBuilder,
    distro: Distro,
    wanted: dict[str, str],
    *,
    out: Path,
    max_size: int,
    budget: float,
    total_budget: float,
    nocheck: bool,
    emit: Callable[[VerifyRow], None],
) -> list[VerifyRow]:
    arch = host_arch()
    universe = builder.universe(distro, tuple(wanted))
    rows: list[VerifyRow] = []
    queue: list[SourcePackage] = []
    for name, version in wanted.items():
        match = [p for p in universe.versions(name) if p.version == version]
        if not match:
            have = ", ".join(p.version for p in universe.versions(name)) or "none"
            rows.append(
                VerifyRow(
                    name,
                    version,
                    0,
                    skipped=f"skipped: not fetchable ({version} not in the "
                    f"signed Sources indexes; they have {have})",
                )
            )
            emit(rows[-1])
            continue
        size = _source_size(match[0])
        if size > max_size:
            rows.append(
                VerifyRow(
                    name,
                    version,
                    size,
                    skipped=f"skipped: too large for the budget "
                    f"({size / 1e6:.1f} MB > {max_size / 1e6:.1f} MB)",
                )
            )
            emit(rows[-1])
            continue
        queue.append(match[0])
    queue.sort(key=lambda p: (_source_size(p), p.name))
    started = time.perf_counter()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-prepare")

    def prepare(package: SourcePackage) -> Future[_Prepared]:
        return executor.submit(_prepare, builder, distro, arch, package)

    pending = prepare(queue[0]) if queue else None
    for index, package in enumerate(queue):
        size = _source_size(package)
        current, pending = pending, None
        spent = time.perf_counter() - started
        if current is None or spent > total_budget:
            if current is not None:
                current.cancel()
            rows.append(
                VerifyRow(
                    package.name,
                    package.version,
                    size,
                    skipped=f"skipped: total budget spent ({spent:.0f} s)",
                )
            )
            emit(rows[-1])
            continue
        prepared = current.result()
        if index + 1 < len(queue) and spent <= total_budget:
            pending = prepare(queue[index + 1])  # while this one builds
        if prepared.root is None:
            rows.append(
                VerifyRow(
                    package.name,
                    package.version,
                    size,
                    fetch_seconds=prepared.fetch,
                    skipped=prepared.why,
                    attempted=prepared.attempted,
                )
            )
        else:
            rows.append(
                _verify_one(
                    builder, package, size, prepared, out=out, budget=budget, nocheck=nocheck
                )
            )
        emit(rows[-1])
    executor.shutdown(wait=True)
    return rows


@dataclass(frozen=True)
class _Prepared:
    root: BuildRoot | None
    fetch: float = 0.0
    root_seconds: float = 0.0
    why: str = ""
    attempted: bool = False


def _prepare(
    builder: SourceBuilder, distro: Distro, arch: str, package: SourcePackage
) -> _Prepared:
    """Fetch the source (verified), then create or look up its build root."""
    try:
        _, fetch = _timed(lambda: builder.fetch(distro, package.name, version=package.version))
    except RemoteContentError as exc:
        return _Prepared(None, why=f"skipped: not fetchable: {_first_line(exc)}")
    try:
        root, seconds = _timed(lambda: builder.build_root(distro, arch, package, ()))
    except KilnError as exc:
        return _Prepared(None, fetch, why=f"no build root: {_first_line(exc)}", attempted=True)
    return _Prepared(root, fetch, seconds, attempted=True)


def _verify_one(
    builder: SourceBuilder,
    package: SourcePackage,
    size: int,
    prepared: _Prepared,
    *,
    out: Path,
    budget: float,
    nocheck: bool,
) -> VerifyRow:
    began = time.perf_counter()
    try:
        comparison: RebuildComparison = builder.rebuild_verify(
            package.name,
            arch=host_arch(),
            out_dir=out / package.name,
            nocheck=nocheck,
            version=package.version,
            timeout=budget,
        )
    except BuildError as exc:
        tail = " | ".join(line.strip() for line in exc.details[-3:] if line.strip())
        why = f"build failed after {time.perf_counter() - began:.0f} s: {tail[-300:]}"
        return VerifyRow(
            package.name,
            package.version,
            size,
            skipped=why,
            attempted=True,
            fetch_seconds=prepared.fetch,
            root_seconds=prepared.root_seconds,
        )
    except KilnError as exc:
        return VerifyRow(
            package.name,
            package.version,
            size,
            attempted=True,
            skipped=f"failed: {_first_line(exc)}",
            fetch_seconds=prepared.fetch,
            root_seconds=prepared.root_seconds,
        )
    return VerifyRow(
        package.name,
        package.version,
        size,
        comparison.matched,
        len(comparison.packages),
        build_seconds=comparison.build_seconds,
        attempted=True,
        fetch_seconds=prepared.fetch,
        root_seconds=prepared.root_seconds,
    )


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--phases",
        default="jq,zlib:nocheck",
        help="NAME[:PROFILE+PROFILE],... timed cold/cached ('' for none)",
    )
    parser.add_argument(
        "--verify-sources", action="store_true", help="rebuild-verify the lock's source packages"
    )
    parser.add_argument("--lock", type=Path, default=ROOT / "images" / "python.lock.json")
    parser.add_argument("--only", default="", help="comma-separated source packages to verify")
    parser.add_argument(
        "--max-source-size",
        type=float,
        default=3.0,
        help="skip sources larger than this (MB, files in the Sources index)",
    )
    parser.add_argument("--budget", type=float, default=900.0, help="per-package build budget (s)")
    parser.add_argument(
        "--total-budget",
        type=float,
        default=3600.0,
        help="start no new package after this many seconds",
    )
    parser.add_argument(
        "--with-tests",
        action="store_true",
        help="run the packages' test suites (default: DEB_BUILD_OPTIONS=nocheck)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-source")
    args = parser.parse_args()
    distro = get_distro("debian-13")
    print(f"kiln source bench: {distro.codename}/{host_arch()}, results in {args.out}", flush=True)

    phase_rows: list[PhaseRow] = []
    for item in filter(None, args.phases.split(",")):
        name, _, profile_text = item.partition(":")
        profiles = tuple(filter(None, profile_text.split("+")))
        print(
            f"phases: {name} {'(profiles: ' + ','.join(profiles) + ')' if profiles else ''}",
            flush=True,
        )
        phase_rows.append(run_phases(name, profiles, distro, args.out / "phases"))
        print("  " + " | ".join(_phase_cells(phase_rows[-1])), flush=True)
    if phase_rows:
        print()
        print(_table(_PHASE_HEADER, [_phase_cells(r) for r in phase_rows]), flush=True)

    if not args.verify_sources:
        return
    wanted = lock_sources(args.lock)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in wanted]
        if unknown:
            sys.exit(f"not source packages of {args.lock}: {', '.join(unknown)}")
        wanted = {n: wanted[n] for n in names}
    print(
        f"\nverify-sources: {len(wanted)} source packages from {args.lock.name}; "
        f"cutoff {args.max_source_size} MB, budget {args.budget:.0f} s/package, "
        f"total {args.total_budget:.0f} s, tests {'run' if args.with_tests else 'skipped'}",
        flush=True,
    )
    header = ["source", "version", "size", ".debs", "fetch", "root", "build", "result"]
    rows = verify_sources(
        SourceBuilder.from_environment(),
        distro,
        wanted,
        out=args.out / "verify",
        max_size=int(args.max_source_size * 1e6),
        budget=args.budget,
        total_budget=args.total_budget,
        nocheck=not args.with_tests,
        emit=lambda row: print("  " + " | ".join(row.cells()), flush=True),
    )
    ordered = sorted(rows, key=lambda r: (not r.attempted, r.size, r.source))
    print()
    print(_table(header, [r.cells() for r in ordered]))
    compared = sum(r.compared for r in rows)
    matched = sum(r.matched for r in rows)
    attempted = [r for r in rows if r.attempted]
    full = [r for r in attempted if not r.skipped and r.matched == r.compared and r.compared]
    print()
    print(
        f".debs: {matched}/{compared} identical"
        + (f" ({matched / compared:.0%})" if compared else "")
    )
    print(
        f"source packages: {len(full)}/{len(attempted)} attempted fully reproducible"
        + (f" ({len(full) / len(attempted):.0%})" if attempted else "")
        + f"; {len(rows) - len(attempted)} of {len(rows)} not attempted"
    )


if __name__ == "__main__":
    main()
