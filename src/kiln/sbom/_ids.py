"""Identifiers both SBOM formats share: the image's purl and version, the document UUID."""

from __future__ import annotations

import hashlib
import uuid

from packageurl import PackageURL

from kiln.inventory.model import OsRelease
from kiln.sbom.model import ImageIdentity, SbomInput

# UUIDv5 namespace of kiln's SBOM documents (uuid5(NAMESPACE_URL, "kiln:sbom")).
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kiln:sbom")


# Who supplies a distribution, for the operating-system element's supplier.
_DISTRO_SUPPLIERS = {"debian": "Debian", "ubuntu": "Canonical"}


def os_version(distro: OsRelease) -> str:
    """The release as scanners expect it on the OS element: ``13`` (else the codename)."""
    return distro.version_id or distro.codename or "unknown"


def os_supplier(distro: OsRelease) -> str:
    return _DISTRO_SUPPLIERS.get(distro.id, distro.pretty_name or distro.id)


def image_version(image: ImageIdentity) -> str:
    """The image's version annotation, else its manifest digest (NTIA wants a version)."""
    return image.version or image.manifest_digest


def image_purl(image: ImageIdentity) -> str:
    """``pkg:oci/<name>@<index digest>?arch=<arch>`` (purl-spec's ``oci`` type)."""
    qualifiers = {"arch": image.architecture}
    if image.version:
        qualifiers["tag"] = image.version
    name = image.name.rpartition("/")[2].lower()
    purl = PackageURL(type="oci", name=name, version=image.index_digest, qualifiers=qualifiers)
    return str(purl.to_string())


def document_uuid(inp: SbomInput, kind: str) -> uuid.UUID:
    """A UUIDv5 naming this exact SBOM: image digests plus what the SBOM says about them.

    Equal inputs give equal UUIDs (reproducible SBOMs); a lock adding checksums, or a
    kiln release describing the same image differently, gives another document.
    """
    content = hashlib.sha256(repr((inp.packages, inp.files, inp.distro)).encode()).hexdigest()
    image = inp.image
    seed = f"{kind}|{image.index_digest}|{image.manifest_digest}|{image.platform}|{content}"
    return uuid.uuid5(_NAMESPACE, seed)
