"""Value types of kiln's vulnerability view: feed records, packages, findings.

Feed records are what an importer writes into the database and what the matcher reads
back; they are frozen and carry no I/O. A ``Finding`` says which package is affected by
which vulnerability, what the fix is and how the match was made (docs/architecture.md,
docs/vulnerability-db.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class Severity(enum.IntEnum):
    """Severity buckets, ordered so that ``>=`` means "at least as bad"."""

    UNKNOWN = 0
    NEGLIGIBLE = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a user- or feed-supplied severity name (``moderate`` means medium)."""
        key = text.strip().upper()
        if key == "MODERATE":
            return cls.MEDIUM
        try:
            return cls[key]
        except KeyError:
            known = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of {known})") from None

    @classmethod
    def from_cvss_score(cls, score: float) -> Severity:
        """The CVSS v3/v4 qualitative rating of a base score."""
        if score >= 9.0:
            return cls.CRITICAL
        if score >= 7.0:
            return cls.HIGH
        if score >= 4.0:
            return cls.MEDIUM
        if score > 0.0:
            return cls.LOW
        return cls.NEGLIGIBLE


_LABELS = {s: s.name.lower() for s in Severity}


class FindingStatus(enum.StrEnum):
    """What can be done about a finding (the statuses of docs/vulnerability-db.md)."""

    FIXED = "fixed"  # a fixed version exists: upgrade
    OPEN = "open"  # no fix published yet (includes the tracker's "undetermined")
    WONT_FIX = "wont-fix"  # the distro decided not to fix it in this release (no-DSA)
    NOT_AFFECTED = "not_affected"  # a VEX statement says so (not_affected or fixed)
    # Debian unstable/experimental names the fix in a version newer than the stable
    # candidate, and no stable changelog does (``debian-archive`` feed): backport it.
    FIX_IN_UNSTABLE = "fix-in-unstable"


class PackageLike(Protocol):
    """What the matcher needs from an installed package (``kiln.inventory``'s shape)."""

    @property
    def ecosystem(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def source_name(self) -> str | None: ...
    @property
    def source_version(self) -> str | None: ...
    @property
    def purl(self) -> str: ...
    @property
    def locations(self) -> tuple[str, ...]: ...


# --- feed records --------------------------------------------------------------------


@dataclass(frozen=True)
class TrackerStatus:
    """One (source package, CVE, release) verdict of the Debian Security Tracker."""

    source: str
    cve: str
    release: str  # codename: bookworm, trixie, sid, ...
    status: str  # resolved | open | undetermined
    fixed_version: str | None  # "0" means never affected
    urgency: str | None  # low, medium, high, unimportant, "not yet assigned", end-of-life
    nodsa: str | None = None  # the no-DSA note, when Debian will not ship a DSA
    nodsa_reason: str | None = None  # ignored | postponed
    description: str | None = None


@dataclass(frozen=True)
class ChangelogFix:
    """A CVE named by a Debian changelog entry: fixed from ``version`` on."""

    source: str
    cve: str
    version: str
    distribution: str


@dataclass(frozen=True)
class ArchiveMention:
    """The first version of a source's changelog in one suite that names a CVE."""

    source: str
    cve: str
    suite: str  # trixie, trixie-security, trixie-updates, sid, experimental
    version: str  # the first version of that suite's changelog naming the CVE
    line: str  # the changelog item, as evidence
    confidence: str  # fix | low (a "does not affect"-style phrasing)


@dataclass(frozen=True)
class ArchiveStatus:
    """What the archive's changelogs say about a CVE for a source in a stable release.

    ``fixed``: a changelog of the release's suites names it, from ``version`` on.
    ``fix-in-unstable``: only unstable/experimental changelogs name it, in ``version``,
    newer than the release's ``candidate``.
    """

    source: str
    cve: str
    release: str  # the stable codename (trixie)
    status: str  # fixed | fix-in-unstable
    version: str
    suite: str  # whose changelog gave the evidence
    line: str
    confidence: str  # fix | low
    candidate: str  # the release's newest version of the source


@dataclass(frozen=True)
class OsvEvent:
    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class OsvRange:
    type: str  # ECOSYSTEM | SEMVER | GIT
    events: tuple[OsvEvent, ...]


@dataclass(frozen=True)
class OsvAffected:
    ecosystem: str  # as OSV spells it: PyPI, npm, Go, Debian:12, ...
    package: str  # normalised for lookup (see ``normalize_package_name``)
    ranges: tuple[OsvRange, ...]
    versions: tuple[str, ...]


@dataclass(frozen=True)
class OsvRecord:
    """One OSV advisory, reduced to what matching and reporting use."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    modified: str
    published: str | None
    severity: tuple[tuple[str, str], ...]  # (type, score) e.g. ("CVSS_V3", "CVSS:3.1/...")
    database_severity: str | None  # database_specific.severity (GHSA: LOW..CRITICAL)
    references: tuple[str, ...]
    affected: tuple[OsvAffected, ...]
    withdrawn: str | None = None


@dataclass(frozen=True)
class NvdRecord:
    """One NVD CVE: scores, weaknesses, references and CPE configurations."""

    cve: str
    last_modified: str
    description: str
    cvss31_vector: str | None
    cvss31_score: float | None
    cvss40_vector: str | None
    cvss40_score: float | None
    cwes: tuple[str, ...]
    references: tuple[str, ...]
    configurations: tuple[dict[str, Any], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class KevRecord:
    cve: str
    vendor: str
    product: str
    name: str
    date_added: str
    due_date: str | None
    known_ransomware: str | None


@dataclass(frozen=True)
class EpssRecord:
    cve: str
    epss: float
    percentile: float


FeedRecord = (
    TrackerStatus
    | ChangelogFix
    | ArchiveMention
    | ArchiveStatus
    | OsvRecord
    | NvdRecord
    | KevRecord
    | EpssRecord
)


# --- snapshots and findings ----------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One successful feed import: which source, which input (by digest), when."""

    id: int
    source: str
    digest: str  # sha256:<hex> of the input
    created_at: str  # ISO 8601, UTC
    counts: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    origin: str = ""  # the file, directory or URL it came from


@dataclass(frozen=True)
class MatchDetail:
    """How a finding was made: what was searched and which rule matched."""

    feed: str  # debian-tracker | debian-changelog | osv
    rule: str  # e.g. "tracker:resolved", "changelog:fixed", "osv:ECOSYSTEM", "osv:versions"
    searched_package: str  # the name looked up (source package for Debian)
    searched_version: str
    advisory_id: str  # record id in that feed (CVE, PYSEC-..., GHSA-...)
    snapshot_id: int
    namespace: str = ""  # debian:trixie, PyPI, npm, ...


@dataclass(frozen=True)
class VexVerdict:
    """A VEX statement applied to a finding."""

    status: str  # not_affected | fixed | affected | under_investigation
    justification: str | None
    impact_statement: str | None
    document: str  # where the statement came from


@dataclass(frozen=True)
class Finding:
    """One vulnerability affecting one installed package."""

    id: str  # canonical id: the CVE when known, else GHSA, else the feed's id
    aliases: tuple[str, ...]
    package_ecosystem: str
    package_name: str
    package_version: str
    package_purl: str
    source_name: str | None
    source_version: str | None
    locations: tuple[str, ...]
    status: FindingStatus
    fixed_version: str | None
    severity: Severity
    severity_source: str  # nvd | debian-tracker | osv | none
    cvss_vector: str | None
    cvss_score: float | None
    kev: bool
    epss: float | None
    title: str
    urls: tuple[str, ...]
    matches: tuple[MatchDetail, ...]
    vex: VexVerdict | None = None
    unstable_version: str | None = None  # FIX_IN_UNSTABLE: the Debian version that fixes it
    evidence: str | None = None  # FIX_IN_UNSTABLE: the changelog line naming the fix

    @property
    def ids(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))

    @property
    def fix_available(self) -> bool:
        return self.status is FindingStatus.FIXED and self.fixed_version is not None

    @property
    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (
            -self.severity,
            self.package_ecosystem,
            self.package_name,
            self.package_version,
            self.id,
        )


def canonical_id(ids: set[str] | frozenset[str]) -> str:
    """Prefer the CVE id, then a GHSA, then any other id (alphabetically, for stability)."""
    if len(ids) == 1:
        return next(iter(ids))
    for prefix in ("CVE-", "GHSA-"):
        chosen = sorted(i for i in ids if i.startswith(prefix))
        if chosen:
            return chosen[0]
    return sorted(ids)[0]
