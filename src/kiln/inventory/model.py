"""The installed set of a target: what the scanner matches against advisories.

An ``Inventory`` is the answer to "what is inside this image, rootfs or SBOM": the
distro release (from ``os-release``, see https://www.freedesktop.org/software/systemd/man/os-release.html)
and every installed package with a package URL (https://github.com/package-url/purl-spec).
Debian purls follow the shape kiln's SBOMs and syft emit:
``pkg:deb/debian/<name>@<version>?arch=<arch>&distro=debian-<version_id>`` plus
``upstream=<source>[@<source-version>]`` when the source package differs from the binary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packageurl import PackageURL

ECOSYSTEMS = ("deb", "pypi", "npm")

# Debian releases by major version; os-release of testing/sid lacks VERSION_ID and
# SBOM tools often record only ``distro=debian-12``, so the codename is derived here.
DEBIAN_CODENAMES: dict[str, str] = {
    "9": "stretch",
    "10": "buster",
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
    "14": "forky",
    "15": "duke",
}

_DEBIAN_VERSIONS = {codename: version for version, codename in DEBIAN_CODENAMES.items()}
_PEP503_RUN = re.compile(r"[-_.]+")


#: a vulnerability id as a ``Kiln-Fixes`` field lists it (CVE, GHSA, or a feed's own id)
_FIX_ID = re.compile(
    r"^(?:CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}|[A-Z][A-Z0-9]{1,15}-[\w.:-]{1,64})$"
)
#: the most ids one field may name; a longer field is refused as a whole
MAX_KILN_FIXES = 256


def parse_kiln_fixes(value: str, where: str, warnings: list[str]) -> tuple[str, ...]:
    """The vulnerability ids of a ``Kiln-Fixes`` field (space-separated), sorted.

    The field is what kiln's source build writes into the packages it rebuilt
    (``kiln.recipes.build``): the scanner treats each id as fixed in that package. A
    token that is not an id, or a field naming more than ``MAX_KILN_FIXES``, is reported
    in ``warnings`` and not trusted (the token, or the whole field).
    """
    tokens = value.split()
    if len(tokens) > MAX_KILN_FIXES:
        warnings.append(
            f"{where}: Kiln-Fixes names {len(tokens)} ids (at most {MAX_KILN_FIXES}), ignored"
        )
        return ()
    good = []
    for token in tokens:
        if _FIX_ID.match(token):
            good.append(token)
        else:
            warnings.append(
                f"{where}: Kiln-Fixes token {token[:80]!r} is not a vulnerability id, ignored"
            )
    return tuple(sorted(set(good)))


def normalize_pypi_name(name: str) -> str:
    """PEP 503 normalized project name: lowercase, runs of ``-_.`` become ``-``."""
    return _PEP503_RUN.sub("-", name).lower()


@dataclass(frozen=True)
class OsRelease:
    """The operating system release of a target, as ``os-release`` names it."""

    id: str  # debian
    version_id: str | None = None  # 13
    codename: str | None = None  # trixie
    pretty_name: str | None = None

    @classmethod
    def from_parts(
        cls,
        id: str,  # os-release's own field name
        version_id: str | None,
        codename: str | None = None,
        pretty_name: str | None = None,
    ) -> OsRelease:
        """Build a distro, normalising Debian point releases (``12.11`` -> ``12``).

        Debian's os-release ``VERSION_ID`` is the major release; trivy records the
        point release from ``/etc/debian_version``. Both name the same suite.
        """
        distro_id = id.strip().lower()
        version = version_id.strip() if version_id and version_id.strip() else None
        if distro_id == "debian" and version is not None:
            version = version.split(".", 1)[0]
            if codename is None:
                codename = DEBIAN_CODENAMES.get(version)
        elif distro_id == "debian" and codename:
            version = _DEBIAN_VERSIONS.get(codename)
        return cls(distro_id, version, codename or None, pretty_name or None)

    @property
    def purl_qualifier(self) -> str | None:
        """The ``distro=`` purl qualifier value: ``debian-13`` (codename if no version)."""
        suffix = self.version_id or self.codename
        return f"{self.id}-{suffix}" if suffix else None


@dataclass(frozen=True)
class InstalledPackage:
    """One installed package: identity, source package (Debian) and where it was seen."""

    ecosystem: str  # deb | pypi | npm
    name: str  # pypi names are PEP 503 normalized; npm names include the @scope/
    version: str
    source_name: str | None  # Debian source package (the binary name if no Source:)
    source_version: str | None  # Debian source version (the binary version if none)
    arch: str | None
    purl: str
    locations: tuple[str, ...] = field(default=())
    #: vulnerabilities kiln's rebuild of this package fixes (its ``Kiln-Fixes`` field)
    kiln_fixes: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity used for de-duplication across files of one target."""
        return (self.ecosystem, self.name, self.version, self.arch or "")


@dataclass(frozen=True)
class Declared:
    """What a language package's own metadata says about it (for SBOMs, not matching)."""

    licenses: tuple[str, ...] = ()  # statements, most precise first (expression, name, classifier)
    author: str | None = None  # "Name <email>", the author or else the maintainer
    owner: str | None = None  # owner of the source repository the package names (npm)


@dataclass(frozen=True)
class Inventory:
    """Everything found in one target, packages sorted for deterministic output."""

    target: str
    distro: OsRelease | None
    packages: tuple[InstalledPackage, ...]
    warnings: tuple[str, ...] = ()


def deb_purl(  # noqa: PLR0917 - mirrors the purl's own parts
    name: str,
    version: str,
    arch: str | None,
    distro: OsRelease | None,
    source_name: str | None,
    source_version: str | None,
) -> str:
    """Package URL of a Debian binary package, shaped as syft and kiln's SBOMs write it."""
    qualifiers: dict[str, str] = {}
    if arch:
        qualifiers["arch"] = arch
    if distro is not None and distro.purl_qualifier:
        qualifiers["distro"] = distro.purl_qualifier
    if source_name:
        if source_version and source_version != version:
            qualifiers["upstream"] = f"{source_name}@{source_version}"
        elif source_name != name:
            qualifiers["upstream"] = source_name
    namespace = distro.id if distro is not None else "debian"
    return purl_string("deb", namespace, name, version, qualifiers)


def pypi_purl(name: str, version: str) -> str:
    return purl_string("pypi", None, normalize_pypi_name(name), version)


def npm_purl(name: str, version: str) -> str:
    namespace, _, bare = name.rpartition("/")
    return purl_string("npm", namespace or None, bare, version)


def purl_string(
    type_: str,
    namespace: str | None,
    name: str,
    version: str,
    qualifiers: dict[str, str] | None = None,
) -> str:
    """``PackageURL(...).to_string()`` of these parts, normalised once instead of twice.

    ``to_string`` normalises every part anyway; the constructor's own pass changes the
    result only for a part holding a percent sign (it decodes ``%xx`` first), so it is
    kept for those. It cost as much as the rest of reading a dpkg database.
    """
    qualified = "".join(k + v for k, v in (qualifiers or {}).items())
    decode = "%" in f"{namespace or ''}{name}{version}{qualified}"
    purl = PackageURL(
        type=type_,
        namespace=namespace,
        name=name,
        version=version,
        qualifiers=qualifiers,
        normalize_purl=decode,
    )
    return str(purl.to_string())


def build_inventory(
    target: str,
    distro: OsRelease | None,
    packages: list[InstalledPackage],
    warnings: list[str],
) -> Inventory:
    """Merge duplicates (same package seen in several files) and sort deterministically."""
    merged: dict[tuple[str, str, str, str], InstalledPackage] = {}
    for pkg in packages:
        seen = merged.get(pkg.key)
        if seen is None:
            merged[pkg.key] = pkg
            continue
        locations = tuple(sorted(set(seen.locations) | set(pkg.locations)))
        merged[pkg.key] = InstalledPackage(
            seen.ecosystem,
            seen.name,
            seen.version,
            seen.source_name or pkg.source_name,
            seen.source_version or pkg.source_version,
            seen.arch,
            seen.purl,
            locations,
            tuple(sorted(set(seen.kiln_fixes) | set(pkg.kiln_fixes))),
        )
    ordered = sorted(merged.values(), key=lambda p: (*p.key, p.purl))
    return Inventory(target, distro, tuple(ordered), tuple(warnings))
