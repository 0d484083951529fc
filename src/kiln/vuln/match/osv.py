"""OSV matching: ECOSYSTEM/SEMVER range events and ``versions`` lists.

Evaluation follows the OSV schema's algorithm
(https://ossf.github.io/osv-schema/#evaluation): events sorted in the ecosystem's
version order; ``introduced`` opens, ``fixed`` closes before, ``last_affected`` closes
after. GIT ranges never match an installed version (they name commits). A version the
ecosystem cannot order is matched only against the ``versions`` list.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import cmp_to_key
from typing import Any

from kiln.vuln.db.read import VulnData
from kiln.vuln.ecosystems import (
    BadVersionError,
    VersionParser,
    normalize_package_name,
    osv_ecosystem,
    version_parser,
)
from kiln.vuln.match.interface import Candidate, MatchContext, Matcher
from kiln.vuln.model import FindingStatus, MatchDetail, OsvAffected, OsvEvent, OsvRange, PackageLike

_ZERO = object()  # "introduced: 0" sorts before every version


def _key(parse: VersionParser, ev: OsvEvent) -> Any:
    value = ev.introduced or ev.fixed or ev.last_affected or ev.limit
    if ev.introduced == "0":
        return _ZERO
    return parse(value or "")


def _cmp(a: Any, b: Any) -> int:
    if a is _ZERO or b is _ZERO:
        return 0 if a is b else (-1 if a is _ZERO else 1)
    return -1 if a < b else (1 if a > b else 0)


def _cmp_first(a: tuple[Any, OsvEvent], b: tuple[Any, OsvEvent]) -> int:
    return _cmp(a[0], b[0])


def range_affects(rng: OsvRange, ecosystem: str, version: str) -> tuple[bool, str | None]:
    """(affected, the first fixed version above ``version`` in this range)."""
    parse = version_parser(ecosystem, rng.type)
    if parse is None or rng.type == "GIT":
        return False, None
    try:
        v = parse(version)
        keyed = sorted(
            ((_key(parse, e), e) for e in rng.events if e.limit is None),
            key=cmp_to_key(_cmp_first),
        )
    except BadVersionError:
        return False, None
    affected = False
    for k, ev in keyed:
        if ev.introduced is not None and _cmp(v, k) >= 0:
            affected = True
        elif (ev.fixed is not None and _cmp(v, k) >= 0) or (
            ev.last_affected is not None and _cmp(v, k) > 0
        ):
            affected = False
    fixed: str | None = None
    if affected:
        above = [(k, e.fixed) for k, e in keyed if e.fixed is not None and _cmp(k, v) > 0]
        fixed = above[0][1] if above else None
    return affected, fixed


def affected_entry(entry: OsvAffected, version: str) -> tuple[bool, str | None, str]:
    """Whether this ``affected[]`` entry covers ``version``: (hit, fixed version, rule)."""
    fixes: list[str] = []
    rule = ""
    for rng in entry.ranges:
        hit, fixed = range_affects(rng, entry.ecosystem, version)
        if hit:
            rule = rule or f"osv:{rng.type}"
            if fixed:
                fixes.append(fixed)
    if rule:
        return True, (fixes[0] if fixes else None), rule
    if version in entry.versions:
        return True, None, "osv:versions"
    return False, None, ""


def _searched(package: PackageLike, ctx: MatchContext) -> tuple[str, str, str] | None:
    """(OSV ecosystem, normalised name, version) to look up; Debian by source package."""
    if package.ecosystem == "deb":
        if not ctx.debian_version:
            return None
        return (
            f"Debian:{ctx.debian_version}",
            package.source_name or package.name,
            package.source_version or package.version,
        )
    eco = osv_ecosystem(package.ecosystem)
    return eco, normalize_package_name(eco, package.name), package.version


class OsvMatcher(Matcher):
    def lookup_key(self, package: PackageLike, ctx: MatchContext) -> Hashable:
        return _searched(package, ctx)

    def match(self, package: PackageLike, data: VulnData, ctx: MatchContext) -> list[Candidate]:
        searched = _searched(package, ctx)
        if searched is None:
            return []
        eco, name, version = searched
        out: list[Candidate] = []
        for held in data.osv.get((eco, name), ()):
            rec = held.record
            for entry in rec.affected:
                if entry.ecosystem != eco or entry.package != name:
                    continue
                hit, fixed, rule = affected_entry(entry, version)
                if not hit:
                    continue
                out.append(
                    Candidate(
                        vuln_id=rec.id,
                        aliases=frozenset(rec.aliases),
                        status=FindingStatus.FIXED if fixed else FindingStatus.OPEN,
                        fixed_version=fixed,
                        detail=MatchDetail(
                            "osv", rule, name, version, rec.id, held.snapshot_id, eco
                        ),
                        title=rec.summary,
                        urls=rec.references[:5],
                        osv_severity=rec.severity,
                        osv_database_severity=rec.database_severity,
                    )
                )
                break
        return out
