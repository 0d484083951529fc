"""CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/) through cyclonedx-python-lib.

Shape: ``metadata.component`` is the image (type ``container``, purl
``pkg:oci/<name>@<index digest>?arch=..``, the platform manifest's sha256); the files
kiln generated are its nested ``file`` components (with SHA-1 and SHA-256). Every
Debian package is a top-level ``library`` component whose ``bom-ref`` is its purl. The
source package is carried the way scanners read it: the purl's ``upstream=`` qualifier
(syft, grype) and trivy's ``aquasecurity:trivy:Src{Name,Version,Release,Epoch}``
properties. Licences are the declared SPDX id or expression (``LicenseRef-`` ones as
an expression), omitted when unknown; the supplier is the ``Maintainer``; with a lock
the .deb's SHA-256 is the component hash. ``dependencies`` has the image depending on
every package and each package on the installed packages its ``Depends`` name. The
serial number (UUIDv5) and timestamp derive from the image: equal inputs, equal bytes.
"""

from __future__ import annotations

from cyclonedx.exception.model import InvalidUriException
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement, LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from kiln import __version__
from kiln.debian.version import parse_version
from kiln.errors import InputError
from kiln.sbom._ids import document_uuid, image_purl, image_version, os_supplier, os_version
from kiln.sbom.licenses import spdx_license_id
from kiln.sbom.model import GeneratedFile, SbomInput, SbomPackage, Supplier

IMAGE_REF = "kiln-image"
OS_REF = "kiln-os"
TRIVY = "aquasecurity:trivy:"


def _entity(supplier: Supplier | None) -> OrganizationalEntity | None:
    if supplier is None:
        return None
    contact = OrganizationalContact(name=supplier.name, email=supplier.email)
    return OrganizationalEntity(name=supplier.name, contacts=[contact])


def _licenses(package: SbomPackage) -> list[DisjunctiveLicense | LicenseExpression]:
    if package.license is None:
        return []
    declared = LicenseAcknowledgement.DECLARED
    single = spdx_license_id(package.license)
    if single is not None:
        return [DisjunctiveLicense(id=single, acknowledgement=declared)]
    return [LicenseExpression(package.license, acknowledgement=declared)]


def _trivy_source(package: SbomPackage) -> list[Property]:
    """The source package as trivy records it: epoch, upstream version, revision apart."""
    props = [Property(name=TRIVY + "SrcName", value=package.source_name)]
    try:
        version = parse_version(package.source_version)
    except InputError:  # a Source: field with a malformed version: pass it on verbatim
        return [*props, Property(name=TRIVY + "SrcVersion", value=package.source_version)]
    props.append(Property(name=TRIVY + "SrcVersion", value=version.upstream_version))
    if version.debian_revision:
        props.append(Property(name=TRIVY + "SrcRelease", value=version.debian_revision))
    if version.epoch and version.epoch != "0":
        props.append(Property(name=TRIVY + "SrcEpoch", value=version.epoch))
    return props


def _package(package: SbomPackage) -> Component:
    hashes = (
        [HashType(alg=HashAlgorithm.SHA_256, content=package.deb_sha256)]
        if package.deb_sha256
        else []
    )
    refs = []
    if package.homepage and package.homepage.startswith(("http://", "https://")):
        try:
            url = XsUri(package.homepage)
        except InvalidUriException:
            url = None  # a Homepage that is not a URI is left out, not fatal
        if url is not None:
            refs.append(ExternalReference(type=ExternalReferenceType.WEBSITE, url=url))
    if package.ecosystem == "deb":
        props = [
            *_trivy_source(package),
            Property(name="kiln:dpkg:database", value=package.location),
        ]
    else:
        props = [Property(name="kiln:metadata", value=package.location)]
    if package.deb_filename:
        props.append(Property(name="kiln:deb:filename", value=package.deb_filename))
    # Kiln-Recipe -> kiln:recipe, Kiln-Patches -> kiln:patches, Kiln-Fixes -> kiln:fixes
    props += [
        Property(name="kiln:" + field.removeprefix("Kiln-").lower(), value=value)
        for field, value in package.kiln_build
    ]
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        bom_ref=package.purl,
        purl=PackageURL.from_string(package.purl),
        supplier=_entity(package.supplier),
        licenses=_licenses(package),
        hashes=hashes,
        external_references=refs,
        properties=props,
    )


def _file(file: GeneratedFile) -> Component:
    return Component(
        type=ComponentType.FILE,
        name=file.path,
        bom_ref=f"kiln-file:{file.path}",
        hashes=[
            HashType(alg=HashAlgorithm.SHA_1, content=file.sha1),
            HashType(alg=HashAlgorithm.SHA_256, content=file.sha256),
        ],
        properties=[Property(name="kiln:generated", value="true")],
    )


def _image(inp: SbomInput) -> Component:
    image = inp.image
    props = [
        Property(name="kiln:image:index-digest", value=image.index_digest),
        Property(name="kiln:image:manifest-digest", value=image.manifest_digest),
        Property(name="kiln:image:platform", value=image.platform),
        Property(name="kiln:distro", value=inp.distro.purl_qualifier or inp.distro.id),
    ]
    if image.lock_digest:
        props.append(Property(name="kiln:lock-digest", value=image.lock_digest))
    return Component(
        type=ComponentType.CONTAINER,
        name=image.name,
        version=image_version(image),
        bom_ref=IMAGE_REF,
        purl=PackageURL.from_string(image_purl(image)),
        supplier=OrganizationalEntity(name=image.supplier),
        hashes=[
            HashType(alg=HashAlgorithm.SHA_256, content=image.manifest_digest.partition(":")[2])
        ],
        components=[_file(f) for f in inp.files],
        properties=props,
    )


def _os(inp: SbomInput) -> Component:
    """The distro, as syft and trivy write it: trivy finds OS packages through it."""
    return Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=inp.distro.id,
        version=os_version(inp.distro),
        bom_ref=OS_REF,
        supplier=OrganizationalEntity(name=os_supplier(inp.distro)),
        description=inp.distro.pretty_name,
    )


def cyclonedx_bom(inp: SbomInput) -> Bom:
    """The cyclonedx-python-lib model of ``inp``."""
    image = _image(inp)
    tool = Component(
        type=ComponentType.APPLICATION,
        name="kiln",
        version=__version__,
        bom_ref="kiln-tool",
    )
    metadata = BomMetaData(
        timestamp=inp.image.created,
        component=image,
        tools=ToolRepository(components=[tool]),
        authors=[OrganizationalContact(name=inp.image.supplier)],
        supplier=OrganizationalEntity(name=inp.image.supplier),
    )
    packages = {p.purl: _package(p) for p in inp.packages}
    os_component = _os(inp)
    bom = Bom(
        components=[os_component, *packages.values()],
        serial_number=document_uuid(inp, "cyclonedx"),
        metadata=metadata,
    )
    extra = [packages[p.purl] for p in inp.packages if p.ecosystem != "deb"]
    bom.register_dependency(image, [os_component, *extra])
    bom.register_dependency(
        os_component, [packages[p.purl] for p in inp.packages if p.ecosystem == "deb"]
    )
    for package in inp.packages:
        targets = [packages[d] for d in package.depends if d in packages]
        bom.register_dependency(packages[package.purl], targets)
    return bom


def generate_cyclonedx(inp: SbomInput) -> bytes:
    """CycloneDX 1.6 JSON bytes of ``inp``; equal inputs, equal bytes."""
    out = make_outputter(cyclonedx_bom(inp), OutputFormat.JSON, SchemaVersion.V1_6)
    return str(out.output_as_string(indent=2)).encode() + b"\n"
