"""Lock benchmark: kiln lock of the python image, cold and warm, beside apt.

Run: `make bench` or `.venv/bin/python bench/resolve.py [SPEC]`. Needs the Debian
archive. Prints one table: kiln's cold lock (empty cache: download + verify + index),
warm lock (cached indexes, conditional requests), their split into index load and
resolve, and apt's `apt-get update` + `apt-get install --simulate` over the same
mirrors for the same package set, per architecture.
Target (issue 2): warm lock of the python image (both archs) <= 1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _aptroot import apt_simulate, apt_update, make_apt_root

from kiln.debian import Cache, discover_mirrors, get_distro
from kiln.net import HttpFetcher
from kiln.pipeline import ArchiveAccess, lock_spec
from kiln.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def _timed_lock(spec_path: Path, cache_dir: Path, max_age: float) -> tuple[float, float, int]:
    loaded = load_spec(spec_path)
    distro = get_distro(loaded.spec.distro)
    repo = ArchiveAccess(discover_mirrors(), Cache(cache_dir), HttpFetcher(), max_age=max_age)
    t0 = time.perf_counter()
    snapshot = repo.snapshot(distro, loaded.spec.archs)
    t1 = time.perf_counter()
    result = lock_spec(loaded, snapshot)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(result.lock.all_packages())


def _cli_lock(spec_path: Path, cache_dir: Path, out_dir: Path) -> float:
    spec_copy = out_dir / spec_path.name
    spec_copy.write_bytes(spec_path.read_bytes())
    env = {**os.environ, "KILN_CACHE": str(cache_dir)}
    t0 = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv/bin/kiln"), "lock", str(spec_copy)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - t0


def _row(table: Table, tool: str, run: str, index: float, resolve: float, count: int) -> None:
    table.add_row(
        tool, run, f"{index:.2f}s", f"{resolve:.3f}s", f"{index + resolve:.2f}s", str(count)
    )


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "images/python.yaml"
    loaded = load_spec(spec_path)
    distro = get_distro(loaded.spec.distro)
    table = Table(title=f"lock {spec_path.name} ({', '.join(loaded.spec.archs)})")
    for column in ("tool", "run", "index load + verify", "resolve", "total", "packages"):
        table.add_column(column, justify="left" if column in ("tool", "run") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        runs = (("cold (empty cache)", 0.0), ("warm (conditional GETs)", 0.0),
                ("warm (--max-age 3600)", 3600.0))  # fmt: skip
        for run, max_age in runs:
            _row(table, "kiln", run, *_timed_lock(spec_path, cache, max_age))
        cli = _cli_lock(spec_path, cache, Path(tmp))
        table.add_row("kiln", "warm, whole `kiln lock` process", "", "", f"{cli:.2f}s", "")
        requested = loaded.spec.packages_for("runtime")
        for arch in loaded.spec.archs:
            options = make_apt_root(Path(tmp) / f"apt-{arch}", distro, arch)
            for run in ("cold", "warm"):
                t0 = time.perf_counter()
                apt_update(options)
                t1 = time.perf_counter()
                names = apt_simulate(options, requested)
                t2 = time.perf_counter()
                _row(table, f"apt ({arch})", f"{run} update + simulate", t1 - t0, t2 - t1,
                     len(names))  # fmt: skip
    Console().print(table)
    print("kiln counts packages over all variants and archs; apt resolves the runtime set once")
    print("per arch (apt-get install --simulate --no-install-recommends, empty dpkg status).")


if __name__ == "__main__":
    main()
