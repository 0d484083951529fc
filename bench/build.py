"""Build benchmark: every catalog image, cold and warm, beside mmdebstrap.

Run: `make bench` or `.venv/bin/python bench/build.py [SPEC...]`. Needs the Debian
archive. For each image (runtime variant) it prints the compressed and uncompressed size
per architecture, package and file counts, and these times (each a whole `kiln build`
process, from the checked-in lock):

* cold amd64: empty kiln cache (download + verify the .debs, assemble, write the layout);
* cold all archs: the other archs added to that cache (their .debs are downloaded);
* warm: the same build again (cached .debs and layouts), all archs;
* mmdebstrap --variant=extract of the runtime lock's amd64 package names, over the
  host's mirrors (/etc/apt/sources.list.d), into a tar: the peer baseline for cold amd64.

`bench/build.py --summary [OUT]` only reads the layouts under OUT (default out/, as
`make demo` leaves them) and prints their sizes and hardening summary.

Targets (issue 3): static <= 2.0 MiB compressed; python runtime <= 20 MiB compressed
amd64; warm build of python (both archs) <= 3 s; cold build faster than mmdebstrap.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kiln.debian import discover_mirrors, get_distro
from kiln.resolve.lockfile import read_lock
from kiln.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ("static", "base", "cc", "python", "node", "java", "nginx", "redis")
MIB = 1024**2


@dataclass(frozen=True)
class ArchSize:
    arch: str
    compressed: int
    uncompressed: int
    files: int


def _kiln_build(spec: Path, out: Path, cache: Path, archs: str) -> float:
    env = {**os.environ, "KILN_CACHE": str(cache)}
    started = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv/bin/kiln"), "build", str(spec), "--variant", "runtime",
         "--arch", archs, "--output", str(out)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def layout_sizes(layout: Path) -> list[ArchSize]:
    """Per platform: compressed layer bytes, uncompressed tar bytes, regular files."""
    index = json.loads((layout / "index.json").read_text())
    sizes = []
    seen: set[str] = set()  # the per-arch manifests are also tagged at the top level
    for top in index["manifests"]:
        inner = json.loads(_blob(layout, top["digest"]).read_text())
        for entry in inner.get("manifests", [top]):
            if entry["digest"] in seen:
                continue
            seen.add(entry["digest"])
            manifest = json.loads(_blob(layout, entry["digest"]).read_text())
            arch = entry.get("platform", {}).get("architecture", "?")
            compressed = uncompressed = files = 0
            for layer in manifest["layers"]:
                compressed += layer["size"]
                with gzip.open(_blob(layout, layer["digest"])) as stream:
                    counter = _Counter(stream)
                    with tarfile.open(fileobj=counter, mode="r|") as tar:
                        files += sum(1 for m in tar if m.isfile())
                    uncompressed += counter.read_all()
            sizes.append(ArchSize(arch, compressed, uncompressed, files))
    return sizes


class _Counter:
    """A file-like wrapper counting the bytes read through it."""

    def __init__(self, raw: gzip.GzipFile) -> None:
        self.raw, self.count = raw, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def read_all(self) -> int:
        while self.read(1 << 20):
            pass
        return self.count


def _mmdebstrap(names: list[str], tmp: Path) -> tuple[float, int]:
    """mmdebstrap --variant=extract of ``names`` (amd64) into a tar: (seconds, tar bytes)."""
    distro = get_distro("debian-13")
    mirrors = discover_mirrors().suite_urls(distro)
    sources = [
        f"deb [signed-by={distro.keyring}] {url} {suite} main" for suite, url in mirrors.items()
    ]
    target = tmp / "mmdebstrap.tar"
    started = time.perf_counter()
    subprocess.run(
        ["mmdebstrap", "--variant=extract", "--mode=unshare", "--architectures=amd64",
         "--quiet", f"--include={','.join(names)}", distro.codename, str(target), *sources],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started, target.stat().st_size


def bench(name: str, tmp: Path, table: Table) -> None:
    spec_path = ROOT / "images" / f"{name}.yaml"
    loaded = load_spec(spec_path)
    lock = read_lock(loaded.lock_path)
    work = tmp / name
    work.mkdir()
    spec = work / spec_path.name  # the spec and its lock, so that nothing relocks
    shutil.copy(spec_path, spec)
    shutil.copy(loaded.lock_path, work / loaded.lock_path.name)
    cache, out = work / "cache", work / "out"
    archs = ",".join(loaded.spec.archs)
    cold_amd64 = _kiln_build(spec, out, cache, "amd64")
    cold_all = _kiln_build(spec, out, cache, archs)
    warm = _kiln_build(spec, out, cache, archs)
    names = [p.name for p in lock.packages("runtime", "amd64")]
    mm_time, mm_size = _mmdebstrap(names, work)
    for i, size in enumerate(layout_sizes(out / loaded.spec.name)):
        first = i == 0
        table.add_row(
            name if first else "",
            size.arch,
            f"{size.compressed / MIB:.2f} MiB",
            f"{size.uncompressed / MIB:.1f} MiB",
            str(len(lock.packages("runtime", size.arch))),
            str(size.files),
            f"{cold_amd64:.1f}s" if first else "",
            f"{cold_all:.1f}s" if first else "",
            f"{warm:.2f}s" if first else "",
            f"{mm_time:.1f}s" if first else "",
            f"{mm_size / MIB:.1f} MiB" if first else "",
        )
    shutil.rmtree(work)


def summary(out: Path) -> Table:
    """Sizes and the hardening summary of every layout under ``out`` (no building)."""
    table = Table(title=f"catalog layouts in {out}")
    columns = ("image", "arch", "compressed", "uncompressed", "files", "ELF", "PIE",
               "full RELRO", "SSP", "setid stripped", "pruned", "tests")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("image", "arch") else "right")
    for layout in sorted(p.parent for p in out.glob("*/oci-layout")):
        hardening = json.loads((layout / "hardening.json").read_text())
        reports = {r["arch"]: r["summary"] for r in hardening["reports"]}
        ctrf = layout / "ctrf-report.json"
        tests = ""
        if ctrf.is_file():
            counts = json.loads(ctrf.read_text())["results"]["summary"]
            tests = f"{counts['passed']}/{counts['tests']} passed"
        for size in layout_sizes(layout):
            s = reports.get(size.arch, {})
            table.add_row(
                layout.name,
                size.arch,
                f"{size.compressed / MIB:.2f} MiB",
                f"{size.uncompressed / MIB:.1f} MiB",
                str(size.files),
                str(s.get("elf_files", "")),
                f"{s.get('pie', '')}/{s.get('executables', '')}",
                str(s.get("relro_full", "")),
                str(s.get("stack_protector", "")),
                str(s.get("setid_stripped", "")),
                str(s.get("pruned_files", "")),
                tests if size.arch == _host_arch() else "",
            )
    return table


def _host_arch() -> str:
    from kiln.sandbox.unpack import host_arch

    return host_arch()


def main() -> None:
    if sys.argv[1:2] == ["--summary"]:
        Console(width=200).print(summary(Path(sys.argv[2] if len(sys.argv) > 2 else "out")))
        return
    names = [Path(a).stem for a in sys.argv[1:]] or list(CATALOG)
    table = Table(title="kiln build (runtime variants) vs mmdebstrap --variant=extract")
    columns = ("image", "arch", "compressed", "uncompressed", "packages", "files",
               "kiln cold amd64", "kiln cold all", "kiln warm all", "mmdebstrap amd64",
               "mmdebstrap tar")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("image", "arch") else "right")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        for name in names:
            bench(name, Path(tmp), table)
    Console(width=200).print(table)
    print("cold: empty kiln cache; all: every arch of the spec, after the amd64 run;")
    print("warm: the same build again. Each is a whole `kiln build` process (startup included).")
    print("mmdebstrap gets the runtime lock's amd64 package names (no kiln steps, no layout).")


if __name__ == "__main__":
    main()
