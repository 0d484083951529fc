"""An SPDX 2.3 SBOM per source package kiln builds: what went in, what came out.

The document ``DESCRIBES`` the source package as kiln built it (``<name> <version>+kiln<N>``,
purl ``pkg:deb/debian/<name>@<version>?arch=source``); it ``CONTAINS`` each verified
source file (``.dsc``, tarballs: SHA-256 from the signed ``Sources`` index, SHA-1
computed, as SPDX 2.3 requires for files) and each recipe patch (with its DEP-3
``CVE`` and ``Origin`` in the comment); each binary .deb is a package ``GENERATED_FROM``
the source package, with its sha256. Timestamps and the namespace derive from the
inputs (the changelog date kiln gives the build, the digests), so equal builds give equal
bytes. Signed beside the provenance by ``kiln package build --key`` (kiln.pipeline.source).
Spec: https://spdx.github.io/spdx-spec/v2.3/
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
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

from kiln import __version__
from kiln.debian.deb import read_deb
from kiln.fileio import sha256_file
from kiln.sbom.spdx import NAMESPACE_BASE, validated_json

SOURCE_ID = "SPDXRef-Source"
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class SourceFile:
    """A file that went into the build: its name, bytes' digests and a comment."""

    name: str
    sha256: str
    sha1: str
    comment: str = ""

    @classmethod
    def of(cls, path: Path, name: str, comment: str = "") -> SourceFile:
        data = path.read_bytes()
        return cls(
            name,
            hashlib.sha256(data).hexdigest(),
            hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            comment,
        )


def _id(kind: str, name: str) -> str:
    return f"SPDXRef-{kind}-{_ID_CHARS.sub('-', name).strip('-')}"


def _purl(name: str, version: str, arch: str) -> str:
    return f"pkg:deb/debian/{name}@{version.replace(':', '%3A')}?arch={arch}"


def source_spdx(
    *,
    source: str,
    version: str,
    files: Sequence[SourceFile],
    debs: Sequence[Path],
    maintainer: str,
    created: dt.datetime,
) -> bytes:
    """SPDX 2.3 JSON bytes for one source package build, validated by spdx-tools."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\0{f.sha256}\n".encode())
    binaries: list[tuple[Path, str, str, str]] = []
    for deb in sorted(debs):
        control = read_deb(deb, name=deb.name).control
        sha = sha256_file(deb)
        digest.update(f"{deb.name}\0{sha}\n".encode())
        binaries.append((deb, control.package, control.architecture, sha))
    name = f"{source}-{version}"
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=name,
        document_namespace=f"{NAMESPACE_BASE}source-{_ID_CHARS.sub('-', name)}-"
        f"{digest.hexdigest()[:32]}",
        creators=[Actor(ActorType.TOOL, f"kiln-{__version__}")],
        created=created.astimezone(dt.UTC).replace(tzinfo=None),
        creator_comment="kiln package build: Debian's source, the recipe's patches, a sandbox.",
    )
    supplier = Actor(ActorType.ORGANIZATION, re.sub(r"[()<>]", "", maintainer).strip())
    packages = [
        Package(
            spdx_id=SOURCE_ID,
            name=source,
            version=version,
            download_location=SpdxNoAssertion(),
            supplier=supplier,
            files_analyzed=True,  # its files are listed: the sources, patches, recipe
            verification_code=PackageVerificationCode(
                hashlib.sha1(
                    "".join(sorted(f.sha1 for f in files)).encode(), usedforsecurity=False
                ).hexdigest()
            ),
            license_concluded=SpdxNoAssertion(),
            license_declared=SpdxNoAssertion(),
            copyright_text=SpdxNoAssertion(),
            external_references=[
                ExternalPackageRef(
                    ExternalPackageRefCategory.PACKAGE_MANAGER,
                    "purl",
                    _purl(source, version, "source"),
                )
            ],
            primary_package_purpose=PackagePurpose.SOURCE,
            comment="Debian source package rebuilt by kiln (recipe and patches listed as files)",
        )
    ]
    packages += [
        Package(
            spdx_id=_id("Package", deb.name),
            name=package,
            version=version,
            file_name=deb.name,
            download_location=SpdxNoAssertion(),
            supplier=supplier,
            files_analyzed=False,
            checksums=[Checksum(ChecksumAlgorithm.SHA256, sha)],
            license_concluded=SpdxNoAssertion(),
            license_declared=SpdxNoAssertion(),
            copyright_text=SpdxNoAssertion(),
            source_info=f"built package from: {source} {version}",
            external_references=[
                ExternalPackageRef(
                    ExternalPackageRefCategory.PACKAGE_MANAGER,
                    "purl",
                    _purl(package, version, arch),
                )
            ],
            primary_package_purpose=PackagePurpose.INSTALL,
        )
        for deb, package, arch, sha in binaries
    ]
    spdx_files = [
        File(
            name=f"./{f.name}",
            spdx_id=_id("File", f.name),
            checksums=[
                Checksum(ChecksumAlgorithm.SHA1, f.sha1),
                Checksum(ChecksumAlgorithm.SHA256, f.sha256),
            ],
            file_types=[FileType.SOURCE],
            license_concluded=SpdxNoAssertion(),
            copyright_text=SpdxNoAssertion(),
            comment=f.comment or None,
        )
        for f in sorted(files, key=lambda f: f.name)
    ]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, SOURCE_ID)]
    relationships += [
        Relationship(SOURCE_ID, RelationshipType.CONTAINS, f.spdx_id) for f in spdx_files
    ]
    relationships += [
        Relationship(p.spdx_id, RelationshipType.GENERATED_FROM, SOURCE_ID) for p in packages[1:]
    ]
    document = Document(
        creation_info=info, packages=packages, files=spdx_files, relationships=relationships
    )
    return validated_json(document, what=f"{source} {version}")
