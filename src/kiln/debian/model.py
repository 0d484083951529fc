"""Value types shared by the repository client, the resolver and the lock.

A ``BinaryPackage`` is one stanza of a signed ``Packages`` index, reduced to what kiln
uses; relation fields stay as Debian wrote them (``Depends: a (>= 1) | b``) and are
parsed by the resolver. See Debian Policy §5.3 and §7.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BinaryPackage:
    """One binary package as published in a suite's ``Packages`` index."""

    name: str
    version: str
    architecture: str  # amd64, arm64 or all
    source: str  # source package name (``Source:`` field, else the binary name)
    source_version: str  # version in ``Source: name (version)``, else ``version``
    filename: str  # pool path relative to the mirror root
    size: int
    sha256: str
    suite: str  # e.g. trixie, trixie-updates, trixie-security
    component: str = "main"
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    conflicts: str = ""
    breaks: str = ""
    replaces: str = ""
    multi_arch: str = "no"  # no, same, foreign, allowed
    essential: bool = False
    priority: str = "optional"
    section: str = ""
    installed_size: int = 0  # KiB, from ``Installed-Size``

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.architecture)


@dataclass(frozen=True)
class ReleaseIdentity:
    """What a lock records about one signed suite it was resolved from."""

    suite: str  # the suite name as requested (trixie-security)
    codename: str
    date: str  # the Release file's ``Date:`` field, verbatim
    inrelease_sha256: str  # sha256 of the signed InRelease (or Release) bytes
    base_url: str  # the mirror root the suite was read from
