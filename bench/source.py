"""Benchmark source builds: Sources index load, source fetch, build root (cold/cached), jq build.

Run: ``.venv/bin/python bench/source.py [--package jq] [--cold] [--build] [--nocheck]``.
Prints one line per phase with its wall time. ``--cold`` creates the build root in a
fresh temporary cache (mmdebstrap of a buildd chroot plus the Build-Depends: minutes);
without it the cached root is used (created first if absent). ``--build`` also builds
the package in the sandbox (unpatched, as ``kiln rebuild`` does) and compares with
Debian's .debs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kiln.debian import Cache, get_distro
from kiln.pipeline.repo import Repository
from kiln.recipes.build import build_in_sandbox
from kiln.recipes.buildroot import extract_root
from kiln.recipes.service import SourceBuilder, host_arch


def _timed(label: str, started: float) -> float:
    elapsed = time.perf_counter() - started
    print(f"{label:<40} {elapsed:8.2f} s", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", default="jq")
    parser.add_argument("--cold", action="store_true", help="create the build root from scratch")
    parser.add_argument("--build", action="store_true", help="build and compare with Debian")
    parser.add_argument("--nocheck", action="store_true", help="skip the package's tests")
    args = parser.parse_args()
    distro = get_distro("debian-13")
    builder = SourceBuilder.from_environment()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp_name:
        tmp = Path(tmp_name)
        started = time.perf_counter()
        universe = builder.universe(distro, (args.package,))
        _timed("Sources index (signed, cached blobs)", started)
        cold = SourceBuilder(Repository.from_environment())
        cold.repository.cache = Cache(tmp / "cache")
        started = time.perf_counter()
        cold.universe(distro, (args.package,))
        _timed("Sources index (cold cache)", started)
        started = time.perf_counter()
        fetched, _ = cold.fetch(distro, args.package)
        _timed(f"fetch {args.package} {fetched.package.version} (cold)", started)
        started = time.perf_counter()
        builder.fetch(distro, args.package)
        _timed("fetch (cached)", started)
        package = universe.newest(args.package)
        root_builder = cold if args.cold else builder
        started = time.perf_counter()
        root = root_builder.build_root(distro, host_arch(), package, ())
        _timed(f"build root ({'created' if root.created else 'cached'})", started)
        started = time.perf_counter()
        extract_root(root.tarball, tmp / "root-copy")
        _timed("fresh root copy (tar -x)", started)
        if args.build:
            started = time.perf_counter()
            output = build_in_sandbox(
                fetched,
                root_tarball=root.tarball,
                root_sha256=root.sha256,
                out_dir=tmp / "out",
                codename=distro.codename,
                nocheck=args.nocheck,
            )
            _timed(f"build {args.package} in the sandbox", started)
            print(f"  {len(output.debs)} .debs")
            started = time.perf_counter()
            comparison = builder.rebuild_verify(
                args.package, arch=host_arch(), out_dir=tmp / "verify", nocheck=args.nocheck
            )
            _timed("rebuild --verify (second build + compare)", started)
            print(f"  identical: {comparison.rate:.0%}")


if __name__ == "__main__":
    main()
