"""SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/) through spdx-tools' model and writer.

Shape: the document ``DESCRIBES`` the image package (purpose CONTAINER, purl
``pkg:oci/<name>@<index digest>?arch=..``, the platform manifest's sha256 as checksum);
the image ``CONTAINS`` every Debian package and every file kiln generated; packages
``DEPENDS_ON`` the installed packages their ``Depends`` name. Each Debian package has
its purl (with ``upstream=`` when the source differs, as syft writes it), ``sourceInfo``
``built package from: <source> <version>`` (what trivy and kiln read back), the
declared licence from its copyright file (else NOASSERTION), the ``Maintainer`` as
supplier and, with a lock, the .deb's sha256 and file name. Timestamps, identifiers
and the document namespace derive from the image, so equal inputs give equal bytes;
spdx-tools validates the document before writing.
"""

from __future__ import annotations

import hashlib
import io
import re

from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.extracted_licensing_info import ExtractedLicensingInfo
from spdx_tools.spdx.model.file import File, FileType
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
    PackageVerificationCode,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.validation.uri_validators import validate_url
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from kiln import __version__
from kiln.errors import KilnError
from kiln.sbom._ids import document_uuid, image_purl, image_version, os_supplier, os_version
from kiln.sbom.licenses import parse_expression
from kiln.sbom.model import GeneratedFile, SbomInput, SbomPackage, Supplier

SPDX_VERSION = "SPDX-2.3"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
IMAGE_ID = "SPDXRef-Image"
OS_ID = "SPDXRef-OperatingSystem"
# The SPDX spec's own convention for namespaces of documents without a home of their own.
NAMESPACE_BASE = "https://spdx.org/spdxdocs/kiln-"
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
# SPDX actors are serialised as "Organization: name (email)": keep the parser's delimiters out.
_ACTOR_CHARS = re.compile(r"[()]")


class SbomGenerationError(KilnError):
    """kiln produced an SBOM its own validator rejects: a bug, reported with the reasons."""

    exit_code = 3


def _element_id(kind: str, name: str, unique: str) -> str:
    short = hashlib.sha256(unique.encode()).hexdigest()[:16]
    return f"SPDXRef-{kind}-{_ID_CHARS.sub('-', name).strip('-')}-{short}"


def package_id(package: SbomPackage) -> str:
    return _element_id(f"Package-{package.ecosystem}", package.name, package.purl)


def file_id(file: GeneratedFile) -> str:
    return _element_id("File", file.path, file.path)


def _actor(supplier: Supplier | None) -> Actor | SpdxNoAssertion:
    if supplier is None:
        return SpdxNoAssertion()
    kind = ActorType.ORGANIZATION if supplier.kind == "organization" else ActorType.PERSON
    email = _ACTOR_CHARS.sub("", supplier.email) if supplier.email else None
    return Actor(kind, _ACTOR_CHARS.sub("", supplier.name).strip(), email or None)


def _homepage(url: str | None) -> str | None:
    return url if url and not validate_url(url) else None


def _image_package(inp: SbomInput) -> Package:
    image = inp.image
    files = sorted(f.sha1 for f in inp.files)
    code = (
        PackageVerificationCode(
            hashlib.sha1("".join(files).encode(), usedforsecurity=False).hexdigest()
        )
        if files
        else None
    )
    supplier = Actor(ActorType.ORGANIZATION, _ACTOR_CHARS.sub("", image.supplier))
    return Package(
        spdx_id=IMAGE_ID,
        name=image.name,
        download_location=SpdxNoAssertion(),
        version=image_version(image),
        supplier=supplier,
        files_analyzed=bool(files),
        verification_code=code,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, image.manifest_digest.partition(":")[2])],
        license_concluded=SpdxNoAssertion(),
        license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
        comment=(
            f"OCI image {image.platform}: index {image.index_digest}, "
            f"manifest {image.manifest_digest}"
        ),
        external_references=[
            ExternalPackageRef(
                ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", image_purl(image)
            )
        ],
        primary_package_purpose=PackagePurpose.CONTAINER,
        built_date=image.created,
    )


def _os_package(inp: SbomInput) -> Package:
    """The distro, as syft and trivy write it: trivy finds OS packages through it."""
    return Package(
        spdx_id=OS_ID,
        name=inp.distro.id,
        download_location=SpdxNoAssertion(),
        version=os_version(inp.distro),
        supplier=Actor(ActorType.ORGANIZATION, os_supplier(inp.distro)),
        files_analyzed=False,
        license_concluded=SpdxNoAssertion(),
        license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
        comment=inp.distro.pretty_name,
        primary_package_purpose=PackagePurpose.OPERATING_SYSTEM,
    )


def _deb_package(package: SbomPackage) -> Package:
    declared = (
        parse_expression(package.license) if package.license is not None else SpdxNoAssertion()
    )
    checksums = (
        [Checksum(ChecksumAlgorithm.SHA256, package.deb_sha256)] if package.deb_sha256 else []
    )
    return Package(
        spdx_id=package_id(package),
        name=package.name,
        download_location=SpdxNoAssertion(),
        version=package.version,
        file_name=package.deb_filename,
        supplier=_actor(package.supplier),
        files_analyzed=False,
        checksums=checksums,
        homepage=_homepage(package.homepage),
        source_info=(
            f"built package from: {package.source_name} {package.source_version}"
            if package.ecosystem == "deb"
            else None
        ),
        license_concluded=SpdxNoAssertion(),
        license_declared=declared,
        copyright_text=SpdxNoAssertion(),
        external_references=[
            ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl)
        ],
        primary_package_purpose=PackagePurpose.LIBRARY,
        comment=_kiln_build(package),
    )


def _kiln_build(package: SbomPackage) -> str | None:
    """How kiln rebuilt the package from source, for the SPDX package comment."""
    if not package.kiln_build:
        return None
    facts = "; ".join(f"{field}: {value}" for field, value in package.kiln_build)
    return f"rebuilt from source by kiln ({facts})"


def _file(file: GeneratedFile) -> File:
    return File(
        name="." + file.path,
        spdx_id=file_id(file),
        checksums=[
            Checksum(ChecksumAlgorithm.SHA1, file.sha1),
            Checksum(ChecksumAlgorithm.SHA256, file.sha256),
        ],
        file_types=[FileType.TEXT],
        license_concluded=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
        comment="generated by kiln during image assembly",
    )


def spdx_document(inp: SbomInput) -> Document:
    """The SPDX model of ``inp`` (not yet validated)."""
    image = inp.image
    name = f"{image.name}-{image_version(image)}-{image.platform.replace('/', '-')}"
    uid = document_uuid(inp, "spdx")
    creators = [Actor(ActorType.TOOL, f"kiln-{__version__}")]
    creators.append(Actor(ActorType.ORGANIZATION, _ACTOR_CHARS.sub("", image.supplier)))
    info = CreationInfo(
        spdx_version=SPDX_VERSION,
        spdx_id=DOCUMENT_ID,
        name=name,
        document_namespace=f"{NAMESPACE_BASE}{_ID_CHARS.sub('-', name)}-{uid}",
        creators=creators,
        created=image.created.replace(tzinfo=None),
        creator_comment=f"Derived from the installed dpkg database of {image.index_digest}.",
    )
    ids = {p.purl: package_id(p) for p in inp.packages}
    relationships = [Relationship(DOCUMENT_ID, RelationshipType.DESCRIBES, IMAGE_ID)]
    relationships.append(Relationship(IMAGE_ID, RelationshipType.CONTAINS, OS_ID))
    relationships += [
        Relationship(
            OS_ID if p.ecosystem == "deb" else IMAGE_ID, RelationshipType.CONTAINS, ids[p.purl]
        )
        for p in inp.packages
    ]
    relationships += [
        Relationship(IMAGE_ID, RelationshipType.CONTAINS, file_id(f)) for f in inp.files
    ]
    relationships += [
        Relationship(ids[p.purl], RelationshipType.DEPENDS_ON, ids[d])
        for p in inp.packages
        for d in p.depends
        if d in ids
    ]
    refs = {r.id: r for p in inp.packages for r in p.license_refs}
    extracted = [
        ExtractedLicensingInfo(
            license_id=ref.id,
            extracted_text=ref.text,
            license_name=ref.name,
            comment="named in a Debian machine-readable copyright file; no SPDX identifier",
        )
        for ref in (refs[k] for k in sorted(refs))
    ]
    return Document(
        creation_info=info,
        packages=[_image_package(inp), _os_package(inp), *(_deb_package(p) for p in inp.packages)],
        files=[_file(f) for f in inp.files],
        relationships=relationships,
        extracted_licensing_info=extracted,
    )


def generate_spdx(inp: SbomInput) -> bytes:
    """SPDX 2.3 JSON bytes of ``inp``, validated by spdx-tools; equal inputs, equal bytes."""
    return validated_json(spdx_document(inp), what=inp.image.name)


def validated_json(document: Document, *, what: str) -> bytes:
    """``document`` as JSON bytes once spdx-tools finds nothing wrong with it."""
    problems = validate_full_spdx_document(document)
    if problems:
        raise SbomGenerationError(
            f"the SPDX document for {what} fails spdx-tools validation",
            details=[f"{m.context.spdx_id or ''}: {m.validation_message}" for m in problems[:10]],
        )
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False)
    return stream.getvalue().encode() + b"\n"
