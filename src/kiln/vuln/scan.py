"""Scanning: an inventory + the database (+ VEX) -> a ``ScanResult``; filters and gating.

The only I/O here is the database query that narrows feed data to the scanned
packages (through a ``VulnSource``: ``open_for_scan`` gives one); matching itself
is ``kiln.vuln.match.match_packages`` (pure).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Protocol

from kiln.vuln.db.read import VulnSource
from kiln.vuln.ecosystems import normalize_package_name, osv_ecosystem
from kiln.vuln.match import MatchContext, match_packages
from kiln.vuln.model import Finding, FindingStatus, PackageLike, Severity, Snapshot
from kiln.vuln.vex.model import VexStatement


class DistroLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def version_id(self) -> str | None: ...
    @property
    def codename(self) -> str | None: ...


class InventoryLike(Protocol):
    @property
    def target(self) -> str: ...
    @property
    def distro(self) -> DistroLike | None: ...
    @property
    def packages(self) -> Sequence[PackageLike]: ...


@dataclass(frozen=True)
class DistroInfo:
    id: str
    version_id: str | None
    codename: str | None


@dataclass(frozen=True)
class ScanResult:
    """What a scan found in one target, and which feed snapshots it used."""

    target: str
    distro: DistroInfo | None
    package_count: int
    findings: tuple[Finding, ...]
    snapshots: tuple[Snapshot, ...]
    warnings: tuple[str, ...] = ()

    @property
    def active(self) -> tuple[Finding, ...]:
        """Findings that still count (not suppressed by VEX)."""
        return tuple(f for f in self.findings if f.status is not FindingStatus.NOT_AFFECTED)

    def counts(self) -> dict[str, int]:
        """Active findings per severity label, every label present."""
        c = Counter(f.severity.label for f in self.active)
        return {s.label: c.get(s.label, 0) for s in sorted(Severity, reverse=True)}


def _context(inv: InventoryLike) -> MatchContext:
    d = inv.distro
    if d is None or d.id != "debian":
        return MatchContext()
    return MatchContext(release=d.codename, debian_version=d.version_id)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold off CPython's cycle collector while feed rows become findings (or reports).

    A scan makes some 100,000 small acyclic objects (rows, records, findings), freed by
    reference counting alone; the collector would walk them, and every object the
    process holds, over and over (about a sixth of a 700-package scan; a report of
    its findings adds as many dicts and strings again). It is restored as it was
    found, and any garbage is collected on its next run.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: the VEX document name of the statements a package's own ``Kiln-Fixes`` makes
KILN_FIXES_DOCUMENT = "Kiln-Fixes"


def kiln_fixes_statements(packages: Iterable[PackageLike]) -> list[VexStatement]:
    """A ``fixed`` statement for each id a package's ``Kiln-Fixes`` names, about it alone.

    kiln's source builds record in each rebuilt package the vulnerabilities its patches
    fix (``kiln.recipes.build``); Debian's data still calls the version affected (kiln's
    ``+kiln1`` sorts below the version that fixes it in unstable), so without this the
    scanner would report the CVE kiln's own build fixed. The statement is about that
    package's purl only: another package built from the same source without the field
    keeps its finding.
    """
    statements = []
    for package in packages:
        fixes: tuple[str, ...] = getattr(package, "kiln_fixes", ())
        for vuln_id in fixes:
            statements.append(
                VexStatement(
                    vulnerability=vuln_id,
                    aliases=frozenset(),
                    products=(package.purl,),
                    status="fixed",
                    impact_statement=(
                        f"{package.name} {package.version} is kiln's rebuild with the fix "
                        f"(its Kiln-Fixes field names {vuln_id})"
                    ),
                    document=KILN_FIXES_DOCUMENT,
                )
            )
    return statements


def scan_inventory(
    inventory: InventoryLike,
    db: VulnSource,
    *,
    vex: Sequence[VexStatement] = (),
    warnings: Iterable[str] = (),
) -> ScanResult:
    """Match ``inventory`` against ``db``; ``vex`` and the packages' own ``Kiln-Fixes``
    statements (``kiln_fixes_statements``) are applied to the findings."""
    ctx = _context(inventory)
    packages = list(inventory.packages)
    vex = [*kiln_fixes_statements(packages), *vex]
    debs = [p for p in packages if p.ecosystem == "deb"]
    sources = {p.source_name or p.name for p in debs}
    keys = {
        (osv_ecosystem(p.ecosystem), normalize_package_name(osv_ecosystem(p.ecosystem), p.name))
        for p in packages
        if p.ecosystem != "deb"
    }
    if ctx.debian_version:
        keys |= {(f"Debian:{ctx.debian_version}", s) for s in sources}
    with cyclic_gc_paused():
        data = db.load(debian_sources=sources, release=ctx.release, osv_keys=keys)
        findings = match_packages(packages, data, context=ctx, vex=vex)
    d = inventory.distro
    notes = list(warnings)
    if not data.snapshots:
        notes.append("the vulnerability database is empty: run `kiln db update --source ...` first")
    if debs and ctx.release is None:
        notes.append("no Debian release detected (os-release): tracker statuses were not applied")
    return ScanResult(
        target=inventory.target,
        distro=DistroInfo(d.id, d.version_id, d.codename) if d else None,
        package_count=len(packages),
        findings=findings,
        snapshots=data.snapshots,
        warnings=tuple(notes),
    )


def only_fixed(result: ScanResult) -> ScanResult:
    """Keep findings with a fix available (and VEX-suppressed ones, for the record)."""
    kept = tuple(
        f for f in result.findings if f.fix_available or f.status is FindingStatus.NOT_AFFECTED
    )
    return replace(result, findings=kept)


def gate(result: ScanResult, fail_on: Severity, *, unstable_fixes: bool = True) -> list[Finding]:
    """The active findings at or above ``fail_on`` (a non-empty list fails the scan).

    ``unstable_fixes=False`` leaves out findings only Debian unstable fixes so far.
    """
    return [
        f
        for f in result.active
        if f.severity >= fail_on
        and (unstable_fixes or f.status is not FindingStatus.FIX_IN_UNSTABLE)
    ]
