"""Read kiln's signed repository and overlay it on Debian's candidates for the resolver.

``load_kiln_universe`` verifies kiln's ``InRelease`` (gpgv, against kiln's exported
keyring) and its ``Packages.xz`` exactly like a Debian suite (kiln.debian.client).
``PreferKiln`` is a ``PackageUniverse``: for each name, kiln's rebuilt package is the
candidate when the Debian version it was rebuilt from (``<base>+kiln<N>``) is not older
than Debian's newest; otherwise Debian's is. A stale rebuild never shadows a newer
Debian (security) update, even though ``+kiln1`` sorts above ``+deb13u1``; nothing is
pinned blindly.
Packages from kiln's repository carry kiln's suite name, which is what a lock records
about where each package came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from kiln.debian.cache import Cache
from kiln.debian.client import RepoSnapshot, load_packages_table, load_release
from kiln.debian.index import MergedUniverse, PackageUniverse, merge_tables
from kiln.debian.model import BinaryPackage, ReleaseIdentity
from kiln.debian.version import compare_versions
from kiln.net import Fetcher

_KILN_SUFFIX = re.compile(r"\+kiln\d+$")


def load_kiln_universe(
    base_url: str,
    arch: str,
    *,
    keyring: Path,
    cache: Cache,
    fetcher: Fetcher,
    now: datetime,
    suite: str = "kiln",
) -> tuple[MergedUniverse, ReleaseIdentity]:
    """The verified candidates of kiln's repository at ``base_url`` for ``arch``."""
    base = base_url.rstrip("/")
    verified = load_release(
        suite, base, cache=cache, fetcher=fetcher, keyring=keyring, now=now, max_age=0.0
    )
    table = load_packages_table(verified, "main", arch, cache=cache, fetcher=fetcher)
    return merge_tables(arch, [(suite, table)]), verified.identity


def overlay_snapshot(
    snapshot: RepoSnapshot,
    base_url: str,
    *,
    keyring: Path,
    cache: Cache,
    fetcher: Fetcher,
    now: datetime,
    suite: str = "kiln",
) -> RepoSnapshot:
    """``snapshot`` with kiln's repository overlaid (``PreferKiln``) on every architecture.

    kiln's Release identity is appended to the snapshot's releases, so a lock made from
    it names kiln's repository, and ``base_urls`` maps kiln's suite to ``base_url``
    for fetching the rebuilt .debs.
    """
    universes: dict[str, PackageUniverse] = {}
    identity: ReleaseIdentity | None = None
    for arch in snapshot.archs:
        kiln, identity = load_kiln_universe(
            base_url, arch, keyring=keyring, cache=cache, fetcher=fetcher, now=now, suite=suite
        )
        universes[arch] = PreferKiln(snapshot.universe(arch), kiln)
    if identity is None:
        raise ValueError("the snapshot has no architecture to overlay")
    return RepoSnapshot(
        distro=snapshot.distro,
        releases=(*snapshot.releases, identity),
        universes=MappingProxyType(universes),
    )


class PreferKiln:
    """Debian's candidates with kiln's rebuilds preferred when not older (a PackageUniverse)."""

    def __init__(self, debian: PackageUniverse, kiln: PackageUniverse) -> None:
        if debian.arch != kiln.arch:
            raise ValueError(f"cannot overlay {kiln.arch} packages on {debian.arch}")
        self.arch = debian.arch
        self._debian = debian
        self._kiln = kiln

    def get(self, name: str) -> BinaryPackage | None:
        ours = self._kiln.get(name)
        theirs = self._debian.get(name)
        if ours is None:
            return theirs
        if theirs is None or compare_versions(kiln_base_version(ours.version), theirs.version) >= 0:
            return ours
        return theirs

    def providers(self, name: str) -> Sequence[BinaryPackage]:
        names = {p.name for p in self._debian.providers(name)}
        names |= {p.name for p in self._kiln.providers(name)}
        chosen = (self.get(n) for n in sorted(names))
        return tuple(p for p in chosen if p is not None and _provides(p, name))

    def names(self) -> Iterable[str]:
        return iter(sorted(set(self._debian.names()) | set(self._kiln.names())))

    def from_kiln(self, package: BinaryPackage) -> bool:
        """Whether ``package`` (a candidate of this universe) is kiln's rebuild."""
        ours = self._kiln.get(package.name)
        return ours is not None and ours == package


def kiln_base_version(version: str) -> str:
    """The Debian version a ``<debian-version>+kiln<N>`` rebuild started from.

    Compared with Debian's newest instead of the full version: ``1-1+kiln1`` sorts above
    ``1-1+deb13u1`` although it lacks that security update.
    """
    return _KILN_SUFFIX.sub("", version)


def _provides(package: BinaryPackage, name: str) -> bool:
    for item in package.provides.split(","):
        if item.strip().split(" ", 1)[0].split(":", 1)[0] == name:
            return True
    return False
