"""Debian matching: tracker statuses and changelog-derived fixes, by SOURCE package.

Debian's advisories name source packages, so a binary is looked up by its ``Source:``
(falling back to the binary name when the inventory does not know it) and compared in
dpkg order (Debian Policy §5.6.12) against the versions the tracker gives for the
scanned release. Tracker statuses: ``resolved`` with ``fixed_version`` (``0`` = never
affected), ``open``, ``undetermined``; an open issue with a no-DSA decision or an
end-of-life release is reported as ``wont-fix``. A changelog fact (the first version
naming the CVE) marks it fixed from that version on. The ``debian-archive`` feed's
statuses (from the signed archive's changelogs, per suite) apply where the tracker has
not resolved the CVE for the release: ``fixed`` as above, ``fix-in-unstable`` when only
unstable/experimental name the fix; a mention in a "does not affect"-style phrasing is
matched with a ``low-confidence`` rule.
"""

from __future__ import annotations

from collections.abc import Hashable

from kiln.errors import InputError
from kiln.vuln.db.read import Held, VulnData
from kiln.vuln.ecosystems import dpkg_key
from kiln.vuln.match.interface import Candidate, MatchContext, Matcher
from kiln.vuln.model import (
    ArchiveStatus,
    ChangelogFix,
    FindingStatus,
    MatchDetail,
    PackageLike,
    TrackerStatus,
)

TRACKER_URL = "https://security-tracker.debian.org/tracker/"


def _older(a: str, b: str) -> bool | None:
    """a < b in dpkg order; ``None`` when either is not a Debian version."""
    try:
        return dpkg_key(a) < dpkg_key(b)
    except InputError:
        return None


def debian_lookup(package: PackageLike) -> tuple[str, str, str]:
    """(name searched, version compared, how the name was chosen) for a deb package."""
    if package.source_name:
        return package.source_name, package.source_version or package.version, "source"
    return package.name, package.version, "binary-name"


class DebianMatcher(Matcher):
    def lookup_key(self, package: PackageLike, ctx: MatchContext) -> Hashable:
        return debian_lookup(package) if package.ecosystem == "deb" else None

    def match(self, package: PackageLike, data: VulnData, ctx: MatchContext) -> list[Candidate]:
        if package.ecosystem != "deb":
            return []
        source, version, how = debian_lookup(package)
        namespace = f"debian:{ctx.release}" if ctx.release else "debian"
        first_fix: dict[str, Held[ChangelogFix]] = {}
        for fact in data.changelog.get(source, ()):
            cur = first_fix.get(fact.record.cve)
            if cur is None or _older(fact.record.version, cur.record.version):
                first_fix[fact.record.cve] = fact
        out: list[Candidate] = []
        seen: set[str] = set()
        resolved: set[str] = set()
        for held in sorted(data.tracker.get(source, ()), key=lambda h: h.record.cve):
            rec = held.record
            if ctx.release is None or rec.release != ctx.release:
                continue
            seen.add(rec.cve)
            if rec.status == "resolved":
                resolved.add(rec.cve)
            cand = self._tracker(
                rec=rec,
                snapshot_id=held.snapshot_id,
                source=source,
                version=version,
                how=how,
                namespace=namespace,
                changelog=first_fix.get(rec.cve),
                data=data,
            )
            if cand is not None:
                out.append(cand)
        for cve, fact in sorted(first_fix.items()):
            if cve in seen:
                continue
            if _older(version, fact.record.version):
                out.append(
                    Candidate(
                        vuln_id=cve,
                        aliases=frozenset(),
                        status=FindingStatus.FIXED,
                        fixed_version=fact.record.version,
                        detail=MatchDetail(
                            "debian-changelog",
                            f"changelog:fixed({how})",
                            source,
                            version,
                            cve,
                            fact.snapshot_id,
                            namespace,
                        ),
                        title=data.descriptions.get(cve, ""),
                        urls=(TRACKER_URL + cve,),
                    )
                )
        for archived in sorted(data.archive.get(source, ()), key=lambda h: h.record.cve):
            if archived.record.release != ctx.release or archived.record.cve in resolved:
                continue  # the tracker's curated verdict for the release stands
            cand = _archive(archived, source, version, how, data)
            if cand is not None:
                out.append(cand)
        return out

    def _tracker(
        self,
        *,
        rec: TrackerStatus,
        snapshot_id: int,
        source: str,
        version: str,
        how: str,
        namespace: str,
        changelog: Held[ChangelogFix] | None,
        data: VulnData,
    ) -> Candidate | None:
        status: FindingStatus
        fixed: str | None = None
        rule: str
        feed = "debian-tracker"
        snap = snapshot_id
        if rec.status == "resolved":
            if not rec.fixed_version or rec.fixed_version == "0":
                return None  # never affected in this release
            if not _older(version, rec.fixed_version):
                return None
            status, fixed, rule = FindingStatus.FIXED, rec.fixed_version, "tracker:resolved"
        else:
            if changelog is not None:
                older = _older(version, changelog.record.version)
                if older is False:
                    return None  # the installed version's changelog names the fix
                if older:
                    status, fixed = FindingStatus.FIXED, changelog.record.version
                    rule, feed, snap = (
                        f"changelog:fixed(tracker:{rec.status})",
                        "debian-changelog",
                        changelog.snapshot_id,
                    )
            if fixed is None:
                urgency = (rec.urgency or "").rstrip("*").strip()
                if rec.status == "open" and rec.nodsa is not None:
                    reason = rec.nodsa_reason or "no-dsa"
                    status, rule = FindingStatus.WONT_FIX, f"tracker:open:no-dsa:{reason}"
                elif rec.status == "open" and urgency == "end-of-life":
                    status, rule = FindingStatus.WONT_FIX, "tracker:open:end-of-life"
                else:
                    status, rule = FindingStatus.OPEN, f"tracker:{rec.status}"
        return Candidate(
            vuln_id=rec.cve,
            aliases=frozenset(),
            status=status,
            fixed_version=fixed,
            detail=MatchDetail(
                feed,
                f"{rule}({how})",
                source,
                version,
                rec.cve,
                snap,
                namespace,
            ),
            title=data.descriptions.get(rec.cve, ""),
            urls=(TRACKER_URL + rec.cve,),
            urgency=rec.urgency,
        )


def _archive(
    held: Held[ArchiveStatus], source: str, version: str, how: str, data: VulnData
) -> Candidate | None:
    """A debian-archive status as a candidate, when the installed version predates it."""
    rec, snapshot_id = held.record, held.snapshot_id
    if not _older(version, rec.version):
        return None
    low = ":low-confidence" if rec.confidence != "fix" else ""
    unstable = rec.status == "fix-in-unstable"
    return Candidate(
        vuln_id=rec.cve,
        aliases=frozenset(),
        status=FindingStatus.FIX_IN_UNSTABLE if unstable else FindingStatus.FIXED,
        fixed_version=None if unstable else rec.version,
        detail=MatchDetail(
            "debian-archive",
            f"archive:{rec.status}{low}({how})",
            source,
            version,
            rec.cve,
            snapshot_id,
            f"debian:{rec.release}",
        ),
        title=data.descriptions.get(rec.cve, ""),
        urls=(TRACKER_URL + rec.cve,),
        unstable_version=rec.version if unstable else None,
        evidence=f"{rec.suite} {rec.version}: {rec.line}" if unstable else None,
    )
