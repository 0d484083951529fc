"""Large-input benchmark: kiln scan of big SBOMs and dpkg status files (issue 13.10).

Run: `.venv/bin/python bench/large_inputs.py [--quick]`. Generates, in a temporary
directory, CycloneDX SBOMs of 10,000 / 100,000 / 1,000,000 Debian components (the shape
syft writes: purl with arch and distro, a source property) and dpkg status files of
1 / 10 / 100 MB (stanzas of realistic size: descriptions, conffiles, depends), then runs
``kiln scan FILE --format json -o /dev/null`` on each in a child process and prints one
table: input size, packages found, wall time and the child's peak RSS (``wait4``).
``--quick`` stops at the middle sizes. Nothing here is asserted: it is measured.

Limits being measured (see kiln.inventory.sbom and kiln.inventory.dpkg): SBOMs over
32 MB are streamed one record at a time, at most 2,000,000 records and 4 GiB; status
files are streamed line by line, at most 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
KILN = ROOT / ".venv" / "bin" / "kiln"


def write_sbom(path: Path, components: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write('{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [')
        for i in range(components):
            record = {
                "type": "library",
                "bom-ref": f"pkg:deb/debian/pkg{i}@1.{i}-1?arch=amd64",
                "name": f"pkg{i}",
                "version": f"1.{i}-1",
                "purl": f"pkg:deb/debian/pkg{i}@1.{i}-1?arch=amd64&distro=debian-13",
                "properties": [{"name": "syft:metadata:source", "value": f"src{i // 3}"}],
            }
            out.write(("," if i else "") + json.dumps(record))
        out.write("]}")


_STANZA = """Package: pkg{i}
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: {size}
Maintainer: Debian Maintainers <maint{i}@example.org>
Architecture: amd64
Multi-Arch: same
Source: src{src} (1.{i}-1)
Version: 1.{i}-1
Depends: libc6 (>= 2.36), libfoo{i} (= 1.{i}-1), zlib1g (>= 1:1.2.0)
Conffiles:
 /etc/pkg{i}/pkg{i}.conf 0123456789abcdef0123456789abcdef
Description: package number {i} of a generated status file
 A longer description, as real packages have, wrapped over a few lines so the
 stanza has the size of a typical Debian status entry. It says nothing.
 .
 This package exists to measure how kiln reads large dpkg databases.

"""


def write_status(path: Path, megabytes: int) -> int:
    target = megabytes * 1024 * 1024
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            stanza = _STANZA.format(i=count, src=count // 3, size=100 + count % 900)
            out.write(stanza)
            written += len(stanza)
            count += 1
    return count


def scan(path: Path) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit code of ``kiln scan`` in a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(KILN), "scan", str(path), "--format", "json", "-o", os.devnull],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # 1: findings
        assert child.stderr is not None
        sys.stderr.write(child.stderr.read().decode(errors="replace"))
    return elapsed, usage.ru_maxrss, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest inputs")
    args = parser.parse_args()
    sboms = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    statuses = (1, 10) if args.quick else (1, 10, 100)
    table = Table(title="kiln scan of large inputs (child process, --format json)")
    for column in ("input", "file size", "records", "time", "peak RSS", "exit"):
        table.add_column(column, justify="right" if column != "input" else "left")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-large-") as scratch:
        for components in sboms:
            path = Path(scratch) / f"cyclonedx-{components}.json"
            write_sbom(path, components)
            _row(table, f"CycloneDX SBOM, {components:,} components", path, components)
            path.unlink()
        for megabytes in statuses:
            path = Path(scratch) / f"status-{megabytes}mb"
            count = write_status(path, megabytes)
            _row(table, f"dpkg status, {megabytes} MB", path, count)
            path.unlink()
    Console().print(table)


def _row(table: Table, label: str, path: Path, records: int) -> None:
    size = path.stat().st_size
    elapsed, rss, code = scan(path)
    table.add_row(
        label,
        f"{size / 1024 / 1024:.1f} MB",
        f"{records:,}",
        f"{elapsed:.1f} s",
        f"{rss / 1024:.0f} MB",
        str(code),
    )


if __name__ == "__main__":
    main()
