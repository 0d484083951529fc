"""The pure matcher: installed packages + feed data + VEX statements -> findings.

Runs every ``Matcher`` on every package, merges candidates that name the same
vulnerability under different ids (CVE / GHSA / PYSEC aliases) for the same package,
rates severity, flags KEV, attaches EPSS, applies VEX, and sorts deterministically.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from kiln.errors import InputError
from kiln.vuln.db.read import VulnData
from kiln.vuln.ecosystems import BadVersionError, dpkg_key, osv_ecosystem, version_parser
from kiln.vuln.match.debian import DebianMatcher
from kiln.vuln.match.interface import Candidate, MatchContext, Matcher
from kiln.vuln.match.osv import OsvMatcher
from kiln.vuln.match.severity import rate
from kiln.vuln.model import (
    Finding,
    FindingStatus,
    MatchDetail,
    PackageLike,
    Severity,
    canonical_id,
)
from kiln.vuln.vex.apply import apply_vex
from kiln.vuln.vex.model import VexStatement

DEFAULT_MATCHERS: tuple[Matcher, ...] = (DebianMatcher(), OsvMatcher())
# A fix in unstable says more than "open" or "no DSA": it can be backported today.
_STATUS_RANK = {
    FindingStatus.FIXED: 4,
    FindingStatus.FIX_IN_UNSTABLE: 3,
    FindingStatus.WONT_FIX: 2,
    FindingStatus.OPEN: 1,
}


def _highest_version(ecosystem: str, versions: Iterable[str]) -> str | None:
    """The newest of several fixed versions (an upgrade target that satisfies all)."""
    vs = sorted(set(versions))
    if not vs:
        return None
    if ecosystem == "deb":
        try:
            return max(vs, key=dpkg_key)
        except InputError:
            return vs[-1]
    parse = version_parser(osv_ecosystem(ecosystem))
    if parse is None:
        return vs[-1]
    try:
        return max(vs, key=parse)
    except BadVersionError:
        return vs[-1]


def _groups(cands: list[Candidate]) -> list[list[Candidate]]:
    """Union candidates whose id sets overlap (one vulnerability, several names)."""
    parent = list(range(len(cands)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, c in enumerate(cands):
        for ident in (c.vuln_id, *c.aliases):
            if ident in owner:
                parent[find(i)] = find(owner[ident])
            else:
                owner[ident] = i
    groups: dict[int, list[Candidate]] = {}
    for i, c in enumerate(cands):
        groups.setdefault(find(i), []).append(c)
    return list(groups.values())


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The package-independent half of a finding: one merged advisory, rated once."""

    id: str
    aliases: tuple[str, ...]
    status: FindingStatus
    fixed_version: str | None
    severity: Severity
    severity_source: str
    cvss_vector: str | None
    cvss_score: float | None
    kev: bool
    epss: float | None
    title: str
    urls: tuple[str, ...]
    matches: tuple[MatchDetail, ...]
    unstable_version: str | None = None
    evidence: str | None = None


def _verdict(ecosystem: str, group: list[Candidate], data: VulnData) -> _Verdict:
    ids: set[str] = set()
    for c in group:
        ids.add(c.vuln_id)
        ids.update(c.aliases)
    main = canonical_id(ids)
    if len(group) == 1:  # the common case, kept cheap: one advisory, one rule
        (only,) = group
        status, fixed = only.status, only.fixed_version
        details: tuple[MatchDetail, ...] = (only.detail,)
    else:
        best = max(_STATUS_RANK[c.status] for c in group)
        status = next(s for s, r in _STATUS_RANK.items() if r == best)
        fixed = _highest_version(ecosystem, (c.fixed_version for c in group if c.fixed_version))
        details = tuple(
            sorted({c.detail for c in group}, key=lambda d: (d.feed, d.advisory_id, d.rule))
        )
    if status is not FindingStatus.FIXED:
        fixed = None
    unstable = next((c for c in group if c.status is status and c.unstable_version), None)
    if status is not FindingStatus.FIX_IN_UNSTABLE:
        unstable = None
    rated = rate(
        ids,
        data.nvd,
        [c.urgency for c in group],
        [s for c in group for s in c.osv_severity],
        [c.osv_database_severity for c in group],
    )
    cves = sorted(i for i in ids if i.startswith("CVE-"))
    title = next((c.title for c in group if c.title), "")
    if not title:
        title = next((data.nvd[c].description for c in cves if c in data.nvd), "")
    title = title.strip()
    epss = [data.epss[c].epss for c in cves if c in data.epss]
    ids.discard(main)
    return _Verdict(
        id=main,
        aliases=tuple(sorted(ids)),
        status=status,
        fixed_version=fixed,
        severity=rated.severity,
        severity_source=rated.source,
        cvss_vector=rated.vector,
        cvss_score=rated.score,
        kev=any(c in data.kev for c in cves),
        epss=max(epss) if epss else None,
        title=title.split("\n", 1)[0][:200] if title else "",
        urls=tuple(sorted({u for c in group for u in c.urls})),
        matches=details,
        unstable_version=unstable.unstable_version if unstable else None,
        evidence=unstable.evidence if unstable else None,
    )


def _finding(package: PackageLike, locations: tuple[str, ...], v: _Verdict) -> Finding:
    """The finding of verdict ``v`` on ``package``.

    Finding's generated ``__init__`` sets its 21 frozen fields one ``object.__setattr__``
    at a time, a third of the matching time of a 700-package image; the instance dict is
    filled at once instead (Finding has no ``__post_init__``; a test checks that this
    equals the constructor's result field for field).
    """
    finding = object.__new__(Finding)
    finding.__dict__.update(
        id=v.id,
        aliases=v.aliases,
        package_ecosystem=package.ecosystem,
        package_name=package.name,
        package_version=package.version,
        package_purl=package.purl,
        source_name=package.source_name,
        source_version=package.source_version,
        locations=locations,
        status=v.status,
        fixed_version=v.fixed_version,
        severity=v.severity,
        severity_source=v.severity_source,
        cvss_vector=v.cvss_vector,
        cvss_score=v.cvss_score,
        kev=v.kev,
        epss=v.epss,
        title=v.title,
        urls=v.urls,
        matches=v.matches,
        vex=None,
        unstable_version=v.unstable_version,
        evidence=v.evidence,
    )
    return finding


def match_packages(
    packages: Iterable[PackageLike],
    data: VulnData,
    *,
    context: MatchContext,
    vex: Sequence[VexStatement] = (),
    matchers: Sequence[Matcher] = DEFAULT_MATCHERS,
) -> tuple[Finding, ...]:
    """All findings for ``packages``, merged across aliases, VEX applied, sorted."""
    findings: list[Finding] = []
    # Packages that search the same things (binaries of one Debian source) share verdicts.
    verdicts: dict[tuple[Hashable, ...], list[_Verdict]] = {}
    for package in packages:
        key = (package.ecosystem, *(m.lookup_key(package, context) for m in matchers))
        found = verdicts.get(key)
        if found is None:
            cands = [c for m in matchers for c in m.match(package, data, context)]
            found = [_verdict(package.ecosystem, group, data) for group in _groups(cands)]
            verdicts[key] = found
        locations = tuple(package.locations)
        findings.extend(_finding(package, locations, v) for v in found)
    applied = apply_vex(findings, vex)
    # One finding per (package, vulnerability): the inventory already merged duplicates.
    return tuple(sorted(applied, key=lambda f: (*f.sort_key, f.package_purl, f.locations)))
