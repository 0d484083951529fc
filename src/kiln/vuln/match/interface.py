"""The matcher extension point: one ``Matcher`` per kind of advisory data.

A matcher looks at ONE installed package and the pre-loaded ``VulnData`` and returns
``Candidate`` matches; it does no I/O and reads no clock (grype/osv-scanner shape).
``kiln.vuln.match.core`` merges candidates across aliases and adds severity and VEX.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass

from kiln.vuln.db.read import VulnData
from kiln.vuln.model import FindingStatus, MatchDetail, PackageLike


@dataclass(frozen=True)
class MatchContext:
    """What the target says about itself that matching depends on."""

    release: str | None = None  # Debian codename (trixie) of the scanned system
    debian_version: str | None = None  # its VERSION_ID (13), for OSV "Debian:13"


@dataclass(frozen=True)
class Candidate:
    """One advisory that matched one package, before alias merging."""

    vuln_id: str
    aliases: frozenset[str]
    status: FindingStatus
    fixed_version: str | None
    detail: MatchDetail
    title: str = ""
    urls: tuple[str, ...] = ()
    urgency: str | None = None  # Debian tracker urgency
    osv_severity: tuple[tuple[str, str], ...] = ()
    osv_database_severity: str | None = None
    unstable_version: str | None = None  # FIX_IN_UNSTABLE: the fixing Debian version
    evidence: str | None = None  # FIX_IN_UNSTABLE: the changelog line naming the fix


class Matcher(ABC):
    """Finds the advisories that affect one package."""

    @abstractmethod
    def match(self, package: PackageLike, data: VulnData, ctx: MatchContext) -> list[Candidate]:
        """The candidates for ``package``; an empty list when nothing matches."""

    def lookup_key(self, package: PackageLike, ctx: MatchContext) -> Hashable:
        """Everything ``match`` reads of ``package``: equal keys give equal candidates.

        The matcher core looks each key up once per scan (a Debian source package's
        advisories are rated once, not once per binary built from it). The default is
        every field but the purl and the locations; override it to share more.
        """
        return (
            package.ecosystem,
            package.name,
            package.version,
            package.source_name,
            package.source_version,
        )
