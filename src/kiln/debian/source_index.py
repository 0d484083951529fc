"""Debian source indexes: parse ``Sources`` stanzas and load them from the signed suites.

Implements the source half of the archive format
(https://wiki.debian.org/DebianRepository/Format#A.22Sources.22_Indices): each suite's
``main/source/Sources.xz`` is listed with size and SHA256 in the signed Release, so it
is verified exactly like ``Packages`` (kiln.debian.client) before it is parsed. Each
stanza names the ``.dsc`` and the tarballs of one source package version with their
sizes and SHA256 (``Checksums-Sha256``), which is what the fetcher checks downloads
against. ``Build-Depends`` stay as Debian wrote them (arch qualifiers, build profiles).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from debian.deb822 import Sources

from kiln.debian.cache import Cache
from kiln.debian.client import fetch_index, load_release, suite_base_url
from kiln.debian.distro import Distro
from kiln.debian.release import VerifiedRelease
from kiln.debian.sources import Mirrors
from kiln.debian.version import compare_versions
from kiln.errors import RemoteContentError
from kiln.net import Fetcher

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~_-]*$")
_DIRECTORY_RE = re.compile(r"^pool/[A-Za-z0-9.+~_/-]+$")


@dataclass(frozen=True)
class SourceFile:
    """One file of a source package: name (in the package's pool directory), size, sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SourcePackage:
    """One stanza of a signed ``Sources`` index."""

    name: str
    version: str
    directory: str  # pool/main/j/jq
    files: tuple[SourceFile, ...]
    suite: str
    format: str = "1.0"
    binaries: tuple[str, ...] = ()
    architecture: str = "any"
    build_depends: str = ""
    build_depends_arch: str = ""
    build_depends_indep: str = ""
    build_conflicts: str = ""
    stanza: str = field(default="", repr=False, compare=False)  # the stanza's text, verbatim

    @property
    def dsc(self) -> SourceFile | None:
        return next((f for f in self.files if f.name.endswith(".dsc")), None)

    @property
    def upstream_files(self) -> tuple[SourceFile, ...]:
        """Everything but the .dsc: the tarballs (and their signatures)."""
        return tuple(f for f in self.files if not f.name.endswith(".dsc"))

    def build_relations(self, *, arch_only: bool = True) -> str:
        """Build-Depends (+ -Arch, + -Indep unless ``arch_only``) joined for a binary build."""
        parts = [self.build_depends, self.build_depends_arch]
        if not arch_only:
            parts.append(self.build_depends_indep)
        return ", ".join(p for p in parts if p.strip())


def parse_sources(
    data: bytes, *, suite: str, source: str, names: Iterable[str] | None = None
) -> list[SourcePackage]:
    """Parse the text of a ``Sources`` index (already verified).

    ``names`` keeps only those source packages (a full trixie index is ~60 MB; the
    filter looks at each stanza's first line before parsing it).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteContentError(
            f"{source}: Sources index is not UTF-8 (byte {exc.start})"
        ) from exc
    wanted = None if names is None else {f"Package: {n}" for n in names}
    packages: list[SourcePackage] = []
    for number, chunk in enumerate(re.split(r"\n[ \t]*\n", text), start=1):
        if not chunk.strip():
            continue
        if wanted is not None and chunk.lstrip("\n").split("\n", 1)[0].rstrip() not in wanted:
            continue
        stanza = Sources(chunk)
        packages.append(_package(stanza, chunk, suite=suite, where=f"{source}: stanza {number}"))
    return packages


def _package(stanza: Sources, chunk: str, *, suite: str, where: str) -> SourcePackage:
    def text(name: str) -> str:
        return " ".join(str(stanza.get(name, "")).split())

    name, version, directory = text("Package"), text("Version"), text("Directory")
    if not name or not version:
        raise RemoteContentError(f"{where}: no Package or Version field")
    where = f"{where} ({name} {version})"
    if not _DIRECTORY_RE.match(directory) or ".." in directory.split("/"):
        raise RemoteContentError(f"{where}: unsafe or missing Directory {directory!r}")
    files: list[SourceFile] = []
    for item in stanza.get("Checksums-Sha256", []):
        file_name, size, digest = item.get("name", ""), item.get("size", ""), item.get("sha256", "")
        if not _FILENAME_RE.match(file_name) or not size.isdigit() or not _SHA256_RE.match(digest):
            raise RemoteContentError(
                f"{where}: malformed Checksums-Sha256 entry {file_name!r} {size} {digest}"
            )
        files.append(SourceFile(file_name, int(size), digest))
    if not files:
        raise RemoteContentError(
            f"{where}: no Checksums-Sha256 field",
            hint="kiln (like apt) refuses source packages without strong checksums",
        )
    return SourcePackage(
        name=name,
        version=version,
        directory=directory,
        files=tuple(files),
        suite=suite,
        format=text("Format") or "1.0",
        binaries=tuple(b.strip() for b in text("Binary").split(",") if b.strip()),
        architecture=text("Architecture") or "any",
        build_depends=text("Build-Depends"),
        build_depends_arch=text("Build-Depends-Arch"),
        build_depends_indep=text("Build-Depends-Indep"),
        build_conflicts=text("Build-Conflicts"),
        stanza=chunk.strip("\n") + "\n",
    )


@dataclass(frozen=True)
class SourceUniverse:
    """The source packages of a distro's suites, each with the mirror root serving it."""

    distro: Distro
    packages: tuple[SourcePackage, ...]
    base_urls: Mapping[str, str] = field(repr=False)  # suite -> mirror root

    def versions(self, name: str) -> list[SourcePackage]:
        """Every version of source package ``name``, newest first."""
        found = [p for p in self.packages if p.name == name]
        found.sort(key=_VersionKey, reverse=True)
        return found

    def newest(self, name: str) -> SourcePackage:
        found = self.versions(name)
        if not found:
            suites = ", ".join(self.base_urls)
            raise RemoteContentError(
                f"no source package {name!r} in {suites}",
                hint="check the name: it is the Source package (e.g. jq), not a binary",
            )
        return found[0]

    def base_url(self, package: SourcePackage) -> str:
        return suite_base_url(self.base_urls, package.suite)

    def locations(self, package: SourcePackage) -> tuple[str, ...]:
        """Pool directory URLs whose signed index lists ``package`` with the same files.

        The package's own suite comes first; a version published in both the main and
        the security suite (``pool/updates/...``) can be fetched from either.
        """
        found = [f"{self.base_url(package)}/{package.directory}"]
        for other in self.packages:
            if (
                other.name == package.name
                and other.version == package.version
                and set(other.files) == set(package.files)
            ):
                found.append(f"{self.base_url(other)}/{other.directory}")
        return tuple(dict.fromkeys(found))


class _VersionKey:
    def __init__(self, package: SourcePackage) -> None:
        self.version = package.version

    def __lt__(self, other: _VersionKey) -> bool:
        return compare_versions(self.version, other.version) < 0


def load_sources(
    distro: Distro,
    *,
    cache: Cache,
    fetcher: Fetcher,
    mirrors: Mirrors | Mapping[str, str],
    now: datetime,
    keyring: Path | None = None,
    suites: Sequence[str] | None = None,
    components: Sequence[str] = ("main",),
    names: Iterable[str] | None = None,
) -> SourceUniverse:
    """Fetch and verify ``Sources.xz`` of ``distro``'s suites (default: main and security).

    Each index is checked against the size and sha256 in its suite's signed Release
    (verified with gpgv against the distro keyring) before it is decompressed.
    """
    keep = None if names is None else frozenset(names)
    suite_urls = mirrors.suite_urls(distro) if isinstance(mirrors, Mirrors) else dict(mirrors)
    wanted = tuple(suites) if suites is not None else (distro.codename, distro.suites[2])
    ring = keyring if keyring is not None else Path(distro.keyring)
    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="kiln-src") as pool:
        releases = list(
            pool.map(
                lambda suite: load_release(
                    suite,
                    suite_base_url(suite_urls, suite),
                    cache=cache,
                    fetcher=fetcher,
                    keyring=ring,
                    now=now,
                    max_age=0.0,
                ),
                wanted,
            )
        )
    packages: list[SourcePackage] = []
    for suite, verified in zip(wanted, releases, strict=True):
        for component in components:
            packages.extend(
                _load_index(
                    verified,
                    suite,
                    component,
                    suite_base_url(suite_urls, suite),
                    cache=cache,
                    fetcher=fetcher,
                    names=keep,
                )
            )
    return SourceUniverse(distro, tuple(packages), {s: suite_urls[s] for s in wanted})


def _load_index(
    verified: VerifiedRelease,
    suite: str,
    component: str,
    base_url: str,
    *,
    cache: Cache,
    fetcher: Fetcher,
    names: Iterable[str] | None,
) -> Iterable[SourcePackage]:
    path = f"{component}/source/Sources.xz"
    url = f"{base_url}/dists/{suite}/{path}"
    plain = fetch_index(verified, path, cache=cache, fetcher=fetcher)
    return parse_sources(plain, suite=suite, source=url, names=names)
