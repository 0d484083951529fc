"""An OSV feed of kiln's own fixes: the CVEs its rebuilt packages fix (``Kiln-Fixes``).

kiln's source builds (``kiln package build``, ``kiln.recipes.build``) stamp every binary
package with ``Kiln-Recipe`` and, when the recipe's patches fix CVEs, ``Kiln-Fixes``;
``kiln repo publish`` puts them in kiln's signed apt repository. This module reads the
``.deb``s of that repository's pool and writes one OSV 1.6 record per (source package,
CVE):

- ``id`` ``KILN-<CVE>-<source>``, ``aliases`` ``[<CVE>]`` (a scanner merges it with the
  CVE's other advisories, as kiln's own matcher does);
- ``affected[0].package``: ecosystem ``Debian:<VERSION_ID>`` and the *source* package
  name, exactly as OSV's own Debian records name them, so that kiln's matcher (which
  looks Debian packages up by source name and version in ``Debian:<VERSION_ID>``) and
  other OSV scanners read it without knowing kiln;
- one ``ECOSYSTEM`` range ``introduced: 0`` → ``fixed: <kiln version>``: the lowest
  version in the repository whose ``Kiln-Fixes`` names the CVE;
- ``modified`` and ``published``: the repository's ``Release`` date, so the same
  repository always exports the same bytes.

Why ``Debian:<N>`` and not a kiln ecosystem: OSV's ecosystem list is closed (a schema
validator refuses unknown names), kiln's packages *are* Debian packages with Debian
versions (dpkg ordering is the right ordering), and a scanner only looks records up by
the ecosystem of what it scanned. The catch, written down here and in
docs/advisories.md: the record says "affected below kiln's version", so a Debian
security update that fixes the same CVE with a version sorting below kiln's
(``+deb13u5`` < ``+kiln1``) still matches it: the feed describes kiln's packages and is
meant for images built from kiln's repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from kiln.debian.deb import DebFormatError, read_control
from kiln.debian.version import compare_versions
from kiln.errors import InputError, Location
from kiln.fileio import atomic_write
from kiln.text import plain_line
from kiln.vuln.advisories.openvex import canonical

OSV_SCHEMA_VERSION = "1.6.0"
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_SOURCE = re.compile(r"(?P<name>[a-z0-9][a-z0-9+.-]+)(?: \((?P<version>[^)\s]+)\))?")


@dataclass(frozen=True)
class RebuiltFix:
    """One CVE fixed by one kiln rebuild of a source package."""

    source: str
    version: str  # the source version of the rebuild (Debian's, with +kilnN)
    cve: str
    binaries: tuple[str, ...]
    recipe: str  # the Kiln-Recipe field: "<source> sha256:<recipe digest>"


def _source_of(fields: Mapping[str, str], where: str) -> tuple[str, str]:
    """(source name, source version) of a binary package's control fields."""
    raw = fields.get("Source", "").strip() or fields["Package"]
    match = _SOURCE.fullmatch(raw)
    if match is None:
        raise InputError(f"Source field {raw[:80]!r} is not NAME [(VERSION)]", Location(where))
    return match["name"], match["version"] or fields["Version"]


def rebuilt_fixes(repo: Path) -> list[RebuiltFix]:
    """Every (source, CVE) that a ``.deb`` in ``repo``'s pool fixes, at the lowest version
    that carries the fix, sorted by CVE then source."""
    pool = repo / "pool"
    if not pool.is_dir():
        raise InputError(
            f"{repo} is not a kiln apt repository: it has no pool/ directory",
            hint="pass the directory kiln repo publish wrote (--repo PATH)",
        )
    found: dict[tuple[str, str], RebuiltFix] = {}
    for deb in sorted(pool.rglob("*.deb")):
        if deb.is_symlink() or not deb.is_file():
            continue
        where = str(deb)
        try:
            fields = dict(read_control(deb, name=deb.name).fields)
        except DebFormatError as exc:
            raise InputError(plain_line(f"cannot read {deb.name}: {exc}"), Location(where)) from exc
        fixes = fields.get("Kiln-Fixes", "").split()
        if not fixes:
            continue
        bad = [c for c in fixes if not _CVE.fullmatch(c)]
        if bad:
            raise InputError(
                f"Kiln-Fixes names {bad[0][:64]!r}, which is not a CVE id", Location(where)
            )
        source, version = _source_of(fields, where)
        for cve in fixes:
            key = (cve, source)
            seen = found.get(key)
            binary = fields["Package"]
            if seen is None or compare_versions(version, seen.version) < 0:
                binaries = seen.binaries if seen and seen.version == version else ()
                found[key] = RebuiltFix(
                    source, version, cve, (*binaries, binary), fields.get("Kiln-Recipe", "")
                )
            elif seen.version == version and binary not in seen.binaries:
                found[key] = RebuiltFix(source, version, cve, (*seen.binaries, binary), seen.recipe)
    return [found[key] for key in sorted(found)]


def repository_date(repo: Path) -> datetime:
    """The newest ``Date`` of the repository's ``dists/*/Release`` files (UTC)."""
    dates: list[datetime] = []
    for release in sorted((repo / "dists").glob("*/Release")):
        for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Date:"):
                try:
                    dates.append(parsedate_to_datetime(line.split(":", 1)[1].strip()))
                except (TypeError, ValueError) as exc:
                    raise InputError(
                        f"Release Date {line[5:].strip()[:64]!r} is not an RFC 2822 date",
                        Location(str(release)),
                    ) from exc
                break
    if not dates:
        raise InputError(
            f"{repo} has no dists/*/Release with a Date: it was never published",
            hint="kiln repo publish writes and signs the Release",
        )
    return max(d if d.tzinfo else d.replace(tzinfo=UTC) for d in dates).astimezone(UTC)


def osv_record(fix: RebuiltFix, *, release: str, modified: datetime) -> dict[str, Any]:
    """The OSV 1.6 record saying ``fix.cve`` is fixed in kiln's ``fix.version``."""
    stamp = modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "schema_version": OSV_SCHEMA_VERSION,
        "id": f"KILN-{fix.cve}-{fix.source}",
        "modified": stamp,
        "published": stamp,
        "aliases": [fix.cve],
        "summary": f"{fix.cve} is fixed in kiln's rebuild of {fix.source} {fix.version}",
        "details": (
            f"kiln rebuilt the Debian source package {fix.source} from a recipe whose patches "
            f"fix {fix.cve} (Kiln-Fixes); its binary packages "
            f"{', '.join(sorted(fix.binaries))} at version {fix.version} carry the fix."
        ),
        "affected": [
            {
                "package": {
                    "ecosystem": f"Debian:{release}",
                    "name": fix.source,
                    "purl": f"pkg:deb/debian/{fix.source}?distro=debian-{release}",
                },
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": fix.version}],
                    }
                ],
                "database_specific": {
                    "kiln_recipe": fix.recipe,
                    "binaries": sorted(fix.binaries),
                },
            }
        ],
        "database_specific": {"source": "kiln"},
    }


def osv_records(
    fixes: Iterable[RebuiltFix], *, release: str, modified: datetime
) -> list[dict[str, Any]]:
    """One record per fix, in the order given."""
    if not re.fullmatch(r"\d{1,3}", release):
        raise InputError(f"--release {release[:32]!r}: expected a Debian VERSION_ID such as 13")
    return [osv_record(f, release=release, modified=modified) for f in fixes]


def export_osv(repo: Path, outdir: Path, *, release: str = "13", prune: bool = True) -> list[Path]:
    """Write one ``<id>.json`` per fix in ``repo`` into ``outdir`` (atomically each);
    the paths written, sorted.

    With ``prune``, kiln's records (``KILN-*.json``) in ``outdir`` that this export did
    not write are removed: a rebuild that left the repository (Debian's own update
    superseded it) must not keep saying that versions below it are affected. Other
    files are never touched.
    """
    fixes = rebuilt_fixes(repo)
    records = osv_records(fixes, release=release, modified=repository_date(repo))
    written = []
    for record in records:
        path = outdir / f"{record['id']}.json"
        atomic_write(path, canonical(record) + b"\n")
        written.append(path)
    if prune and outdir.is_dir():
        for stale in sorted(set(outdir.glob("KILN-*.json")) - set(written)):
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
    return sorted(written)
