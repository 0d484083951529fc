"""What an SBOM says about one image: the shared input of the SPDX and CycloneDX writers.

``SbomInput`` is derived from the image itself (its OCI descriptors, annotations, dpkg
database, ``os-release`` and ``copyright`` files), never from the spec that asked for it.
Both writers, and the attestation code that wraps their output, take this one value, so
the two formats always describe the same packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kiln.inventory.model import OsRelease


@dataclass(frozen=True)
class ImageIdentity:
    """The image an SBOM describes: the root component of both formats."""

    name: str  # org.opencontainers.image.title, else the ref name, else the layout's name
    version: str | None  # org.opencontainers.image.version
    index_digest: str  # what index.json points at: the digest users pull by
    manifest_digest: str  # the chosen platform's image manifest
    platform: str  # os/arch[/variant], e.g. linux/amd64
    created: datetime  # UTC; the image's created annotation or config, else SOURCE_DATE_EPOCH
    supplier: str = "kiln"  # org.opencontainers.image.vendor, else the caller's default
    lock_digest: str | None = None  # from /usr/lib/kiln/image.json when kiln built it

    @property
    def architecture(self) -> str:
        """The OCI architecture (``amd64``, ``arm64``): the purl ``arch=`` of the image."""
        return self.platform.split("/")[1]


@dataclass(frozen=True)
class Supplier:
    """Who distributes a package (Debian's ``Maintainer`` field)."""

    kind: Literal["organization", "person"]
    name: str
    email: str | None = None


@dataclass(frozen=True)
class LicenseRef:
    """A licence with no SPDX identifier, declared once per document (``LicenseRef-...``)."""

    id: str  # LicenseRef-<idstring>
    name: str  # the name the copyright file uses, e.g. public-domain
    text: str


@dataclass(frozen=True)
class SbomPackage:
    """One installed Debian binary package."""

    name: str
    version: str
    arch: str | None
    source_name: str
    source_version: str
    purl: str  # pkg:deb/debian/<name>@<version>?arch=..&distro=debian-13[&upstream=..]
    supplier: Supplier | None
    #: SPDX licence expression from the machine-readable copyright file; None = NOASSERTION
    license: str | None
    license_refs: tuple[LicenseRef, ...] = ()
    homepage: str | None = None
    deb_sha256: str | None = None  # hex sha256 of the .deb, known only from the lock
    deb_filename: str | None = None  # the .deb's file name in the pool (from the lock)
    depends: tuple[str, ...] = ()  # purls of installed packages this one depends on
    location: str = ""  # the dpkg database file that lists it
    #: how kiln rebuilt it from source (Kiln-Recipe, Kiln-Patches, Kiln-Fixes control fields)
    kiln_build: tuple[tuple[str, str], ...] = ()
    #: deb (from the dpkg database), or pypi / npm (installed outside dpkg, e.g. pip, npm)
    ecosystem: str = "deb"


@dataclass(frozen=True)
class GeneratedFile:
    """A file kiln wrote into the image itself (accounts, CA bundle, build facts)."""

    path: str  # absolute, e.g. /etc/passwd
    sha256: str  # hex
    sha1: str  # hex; SPDX 2.3 requires a SHA1 checksum on every file
    size: int


@dataclass(frozen=True)
class SbomInput:
    """Everything both SBOM formats state about one platform of one image."""

    image: ImageIdentity
    distro: OsRelease
    packages: tuple[SbomPackage, ...]  # sorted by (name, arch, version)
    files: tuple[GeneratedFile, ...] = ()  # sorted by path
    warnings: tuple[str, ...] = ()
