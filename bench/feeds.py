"""Feed update benchmark: ``kiln db update --source debian-archive`` over the catalog.

Run: `.venv/bin/python bench/feeds.py [--all]`. Prints one table. What it measures, each
as the whole command a user runs (a child process, start-up included):

1. cold: an empty ``KILN_CACHE`` and an empty database: five signed Releases (trixie,
   -updates, -security, sid, experimental), their amd64 ``Packages.xz``, and one .deb per
   (source, version) of the catalog's ~100 source packages, parsed and imported.
2. warm, nothing changed: the same cache and database again; every Release is
   re-checked with the mirror and, being unchanged, nothing else is read (a no-op).
3. warm, forced: ``--force`` re-derives every record from the (source, version) cache of
   parsed changelogs, as a run after a new Release with few changed versions would.

Also: the bytes of .debs fetched (the artifact choice: the smallest binary per suite's
version), the records written, and the fix-in-unstable statuses found.
Targets (issue 15): cold <= 5 min, warm (nothing changed) <= 5 s.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
KILN = [sys.executable, "-m", "kiln.cli.main"]


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [*KILN, *args], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kiln {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return took, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def _blob_bytes(cache: Path) -> tuple[int, int]:
    """(count, bytes) of cached blobs whose first bytes say they are .debs (ar archives)."""
    count = size = 0
    for p in (cache / "sha256").rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                if fh.read(8) == b"!<arch>\n":
                    count += 1
                    size += p.stat().st_size
    return count, size


def main() -> None:
    scope = ["--all"] if "--all" in sys.argv[1:] else []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-feeds-") as tmp:
        cache, db = Path(tmp) / "cache", str(Path(tmp) / "vuln.db")
        env = {**os.environ, "KILN_CACHE": str(cache)}
        args = ["db", "update", "--source", "debian-archive", "--db", db, *scope]
        cold, cold_out = _run(args, env)
        warm, warm_out = _run(args, env)
        forced, _ = _run([*args, "--force"], env)
        debs, deb_bytes = _blob_bytes(cache)
        with sqlite3.connect(db) as conn:
            mentions = conn.execute("SELECT count(*) FROM debian_archive_mention").fetchone()[0]
            by_status = dict(
                conn.execute(
                    "SELECT status, count(*) FROM debian_archive_status GROUP BY status"
                ).fetchall()
            )
            sources = conn.execute(
                "SELECT count(DISTINCT source_package) FROM debian_archive_mention"
            ).fetchone()[0]
    table = Table(title=f"kiln db update --source debian-archive {' '.join(scope) or '(catalog)'}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("cold (empty cache and database)", f"{cold:.1f} s", "<= 300 s")
    table.add_row("warm, nothing changed", f"{warm:.2f} s", "<= 5 s")
    table.add_row("warm, --force (changelogs from cache)", f"{forced:.1f} s", "")
    table.add_row(".debs fetched (smallest binary per version)", f"{debs}", "")
    table.add_row(".deb bytes fetched", f"{deb_bytes / 1e6:.1f} MB", "")
    table.add_row("sources with CVE mentions", str(sources), "")
    table.add_row("mentions (per suite)", str(mentions), "")
    for status, n in sorted(by_status.items()):
        table.add_row(f"statuses: {status}", str(n), "")
    Console().print(table)
    Console().print(f"cold: {cold_out}\nwarm: {warm_out}")


if __name__ == "__main__":
    main()
