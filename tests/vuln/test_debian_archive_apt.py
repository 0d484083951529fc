"""Cross-check of the debian-archive feed against an independent count made with apt.

apt, in a private root over the configured mirror (trixie, -updates, -security and sid),
updates its own lists; the count parses those lists with python-debian, downloads with
``apt-get download`` one binary per (source, suite version), extracts its changelog with
``dpkg-deb`` and reads the CVE ids with python-debian: the CVEs named in sid's changelog
of a version newer than the trixie candidate and in no trixie suite's changelog. kiln's
``fix-in-unstable`` statuses named in sid must agree with it: precision and recall
>= 0.95 over the catalog's source packages (issue 15).
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from debian.changelog import Changelog
from debian.deb822 import Packages
from debian.debian_support import Version

from kiln.debian import discover_mirrors
from kiln.debian.cache import Cache
from kiln.debian.distro import get_distro
from kiln.migrate import default_catalog_dir
from kiln.net import HttpFetcher
from kiln.pipeline.scan import catalog_sources
from kiln.vuln.db import VulnDB
from kiln.vuln.feeds import Archive, DebianArchiveFeed, Scope

pytestmark = pytest.mark.network

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _aptroot import make_apt_root  # noqa: E402 (bench/ holds the one private apt root)

DISTRO = get_distro("debian-13")
STABLE = ("trixie", "trixie-updates", "trixie-security")
CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")
MAX_DEB = 8 << 20  # prefer binaries below this; a source of only bigger ones takes the smallest


def _apt_root(root: Path) -> list[str]:
    mirrors = discover_mirrors()
    urls = {**mirrors.suite_urls(DISTRO), "sid": mirrors.debian}
    # the mirror here may serve a sid whose Release is past Valid-Until: apt is told to
    # read it anyway, as kiln reads unstable (evidence only)
    return make_apt_root(root, DISTRO, "amd64", suites=urls, unchecked={"sid"})


def _suite_of(list_file: Path) -> str:
    # <host>_<path>_dists_<suite>_main_binary-amd64_Packages[.lz4]
    return list_file.name.split("_dists_", 1)[1].split("_main_", 1)[0]


Rows = list[tuple[str, str, int]]  # (binary, version, size)


def _binaries(root: Path, sources: set[str]) -> dict[str, dict[str, tuple[Version, Rows]]]:
    """suite -> source -> (its newest version there, the binaries built from it)."""
    found: dict[str, dict[str, list[tuple[str, str, Version, int]]]] = {}
    for path in (root / "var/lib/apt/lists").glob("*_Packages*"):
        suite = _suite_of(path)
        # apt keeps its lists compressed (lz4 here); apt-helper reads them as apt does
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
        lines = text.splitlines(keepends=True)
        for stanza in Packages.iter_paragraphs(lines, use_apt_pkg=False):
            name, _, rest = stanza.get("Source", stanza["Package"]).partition(" (")
            if name in sources:
                version = Version(rest.rstrip(")") if rest else stanza["Version"])
                found.setdefault(suite, {}).setdefault(name, []).append(
                    (stanza["Package"], stanza["Version"], version, int(stanza["Size"]))
                )
    result: dict[str, dict[str, tuple[Version, Rows]]] = {}
    for suite, by_src in found.items():
        for src, rows in by_src.items():
            newest = max(r[2] for r in rows)
            kept = sorted((r[0], r[1], r[3]) for r in rows if r[2] == newest)
            result.setdefault(suite, {})[src] = (newest, kept)
    return result


def _changelog(deb: Path, binary: str) -> str | None:
    """The changelog a .deb ships (Policy 12.7), or ``None`` when its doc dir is a symlink."""
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                         capture_output=True).stdout  # fmt: skip
    for name in ("changelog.Debian.gz", "changelog.gz"):
        extracted = subprocess.run(["tar", "-xO", f"./usr/share/doc/{binary}/{name}"],
                                   input=tar, capture_output=True, check=False)  # fmt: skip
        if extracted.returncode == 0 and extracted.stdout:
            return gzip.decompress(extracted.stdout).decode("utf-8", "replace")
    return None


def _per_version_cves(
    options: Sequence[str], work: Path, wanted: dict[tuple[str, str], Rows]
) -> dict[tuple[str, str], dict[str, set[str]]]:
    """Per (source, suite): per changelog version, the CVE ids its entry names.

    One ``apt-get download`` per round: the first binary of each (by name, the small ones
    first), then the next binary of those whose doc directory pointed elsewhere.
    """
    queues = {k: sorted(rows, key=lambda r: (r[2] > MAX_DEB, r[0])) for k, rows in wanted.items()}
    out: dict[tuple[str, str], dict[str, set[str]]] = {}
    while queues:
        batch = {k: q.pop(0) for k, q in queues.items()}
        for old in work.glob("*.deb"):
            old.unlink()
        names = sorted({f"{b}={v}" for b, v, _ in batch.values()})
        subprocess.run(["apt-get", *options, "-qq", "download", *names], cwd=work, check=True,
                       capture_output=True)  # fmt: skip
        for key, (binary, version, _) in batch.items():
            (deb,) = work.glob(f"{binary}_{version.replace(':', '%3a')}_*.deb")
            text = _changelog(deb, binary)
            if text is not None:
                out[key] = {
                    str(block.version): set(CVE.findall("\n".join(block.changes())))
                    for block in Changelog(text, strict=False)
                }
                del queues[key]
            elif not queues[key]:
                raise AssertionError(f"{key}: no changelog in any of {[r[0] for r in wanted[key]]}")
    return out


def test_fix_in_unstable_agrees_with_an_independent_apt_count(tmp_path: Path) -> None:
    sources = catalog_sources(default_catalog_dir())
    options = _apt_root(tmp_path / "apt")
    subprocess.run(["apt-get", *options, "-qq", "update"], check=True, capture_output=True)
    binaries = _binaries(tmp_path / "apt", sources)
    work = tmp_path / "debs"
    work.mkdir()
    candidates: dict[str, Version] = {}
    wanted: dict[tuple[str, str], Rows] = {}
    for src in sorted(sources):
        stable = {s: binaries[s][src] for s in STABLE if src in binaries.get(s, {})}
        if not stable or src not in binaries.get("sid", {}):
            continue
        candidates[src] = max(version for version, _ in stable.values())
        if binaries["sid"][src][0] <= candidates[src]:
            continue  # sid has nothing newer than the release
        for suite, (_, rows) in [*stable.items(), ("sid", binaries["sid"][src])]:
            wanted[(src, suite)] = rows
    changelogs = _per_version_cves(options, work, wanted)
    expected: set[tuple[str, str]] = set()
    for src in sorted({k[0] for k in wanted}):
        in_stable = {
            c
            for suite in STABLE
            for cves in changelogs.get((src, suite), {}).values()
            for c in cves
        }
        newer = {
            c
            for v, cves in changelogs[(src, "sid")].items()
            if Version(v) > candidates[src]
            for c in cves
        }
        expected |= {(src, c) for c in newer - in_stable}

    archive = Archive(
        distro=DISTRO,
        cache=Cache(tmp_path / "cache"),
        fetcher=HttpFetcher(),
        mirrors=discover_mirrors(),
        now=lambda: datetime.now(UTC),
    )
    scope = Scope(frozenset(sources), "catalog")
    db = VulnDB.open(str(tmp_path / "vuln.db"))
    db.import_feed(DebianArchiveFeed(archive, scope), archive.manifest(scope))
    with db.engine.connect() as conn:
        found = {
            (r[0], r[1])
            for r in conn.exec_driver_sql(
                "SELECT s.source_package, s.cve FROM debian_archive_status s"
                " JOIN debian_archive_mention m ON m.source_package = s.source_package"
                " AND m.cve = s.cve AND m.suite = 'sid'"
                " WHERE s.status = 'fix-in-unstable'"
            )
        }
    db.close()
    assert expected, "the independent count found nothing: the cross-check would be empty"
    agree = found & expected
    precision, recall = len(agree) / len(found), len(agree) / len(expected)
    report = (
        f"kiln {len(found)}, apt {len(expected)}, both {len(agree)}; only kiln "
        f"{sorted(found - expected)[:10]}, only apt {sorted(expected - found)[:10]}"
    )
    print(report)
    assert precision >= 0.95, report
    assert recall >= 0.95, report
