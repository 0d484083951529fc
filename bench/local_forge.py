"""Local forge benchmark: open, re-ask and update a pull request per catalog image.

Run: `.venv/bin/python bench/local_forge.py`. Clones this repository into a temporary
directory (the checkout itself is not touched), then for every catalog image opens a
bump pull request with 20 CVE rows of evidence, asks again for the same generation
(must write nothing) and updates it to a new generation; prints the median and maximum
of each, and how long ``list()`` takes. No network.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kiln.forge import ChangeRequest, CveRow, Evidence, LocalGitForge

ROOT = Path(__file__).resolve().parent.parent
CATALOG = "images"


def _change(image: str, generation: str, lock: bytes) -> ChangeRequest:
    rows = tuple(CveRow(f"CVE-2025-{n:04d}", "openssl", "1", "high", "2") for n in range(20))
    evidence = Evidence(image, "bump", generation, cves_before=rows)
    files = {f"{CATALOG}/{image}.lock.json": lock + generation.encode()}
    return ChangeRequest(image, "bump", generation, f"Bump {image}", evidence, files)


def main() -> int:
    """Run the benchmark and print its numbers."""
    with tempfile.TemporaryDirectory(prefix="kiln-forge-bench-") as tmp:
        repo = Path(tmp) / "catalog"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        forge = LocalGitForge(repo, clock=lambda: 1767225600)
        images = sorted(p.name.removesuffix(".yaml") for p in (repo / CATALOG).glob("*.yaml"))
        times: dict[str, list[float]] = {"open": [], "same generation": [], "update": []}
        for image in images:
            lock = (repo / CATALOG / f"{image}.lock.json").read_bytes()
            for key, generation in (("open", "g1"), ("same generation", "g1"), ("update", "g2")):
                start = time.perf_counter()
                forge.open_or_update(_change(image, generation, lock))
                times[key].append(time.perf_counter() - start)
        start = time.perf_counter()
        prs = forge.list()
        listed = time.perf_counter() - start
    for key, values in times.items():
        print(
            f"{key}: {len(values)} images, median {statistics.median(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms"
        )
    print(f"list(): {len(prs)} pull requests in {listed * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
