"""Predicate types kiln attests, the image subjects, and statements for each kind.

Predicate types (the ``predicateType`` of each in-toto statement):

* SLSA provenance v1 — ``https://slsa.dev/provenance/v1`` (``kiln.attest.provenance``);
* SPDX 2.3 SBOM — ``https://spdx.dev/Document/v2.3``, predicate = the SPDX JSON document;
* CycloneDX 1.6 SBOM — ``https://cyclonedx.org/bom/v1.6``, predicate = the BOM JSON;
* OpenVEX — ``https://openvex.dev/ns/v0.2.0``, predicate = the OpenVEX document;
* test report — ``https://kiln.dev/attestation/test-report/ctrf/v1``, a kiln-owned URI
  (CTRF, https://ctrf.io, defines no predicate type): predicate = the CTRF JSON report
  ``kiln test`` writes (``reportFormat: "CTRF"``, ``results.summary``, ``results.tests``);
* image signature — ``https://kiln.dev/attestation/image-signature/v1``, kiln-owned:
  the statement's single subject is the signed manifest or index digest; the predicate
  is ``{"mediaType": <manifest media type>}`` plus, when known, ``"repository"``
  (where it was published). Signing this statement is signing the image.

The ``kiln.dev`` URIs are identifiers (in-toto allows unresolvable type URIs); they
are documented here and nowhere depends on fetching them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.attest.statement import Statement, Subject, make_statement
from kiln.errors import InputError
from kiln.registry import OCI_INDEX, OCI_MANIFEST, ImageIndex, ImageLayout

if TYPE_CHECKING:
    from kiln.assemble import BuiltImage

PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SPDX_2_3 = "https://spdx.dev/Document/v2.3"
CYCLONEDX_1_6 = "https://cyclonedx.org/bom/v1.6"
OPENVEX_0_2 = "https://openvex.dev/ns/v0.2.0"
TEST_REPORT_CTRF = "https://kiln.dev/attestation/test-report/ctrf/v1"
IMAGE_SIGNATURE = "https://kiln.dev/attestation/image-signature/v1"

PREDICATE_NAMES: Mapping[str, str] = {
    PROVENANCE_V1: "SLSA provenance",
    SPDX_2_3: "SPDX SBOM",
    CYCLONEDX_1_6: "CycloneDX SBOM",
    OPENVEX_0_2: "OpenVEX",
    TEST_REPORT_CTRF: "test report",
    IMAGE_SIGNATURE: "image signature",
}


def predicate_name(predicate_type: str) -> str:
    """A human name for a predicate type (the URI itself when unknown)."""
    return PREDICATE_NAMES.get(predicate_type, predicate_type)


def _debian_arch(architecture: str, variant: str | None) -> str:
    """OCI (architecture, variant) -> Debian architecture, the inverse of assembly's map."""
    # imported here: kiln.assemble is heavy and only layouts need this
    from kiln.assemble.model import OCI_PLATFORMS  # noqa: PLC0415

    for arch, platform in OCI_PLATFORMS.items():
        if platform == (architecture, variant):
            return arch
    for arch, (oci_arch, _) in OCI_PLATFORMS.items():
        if oci_arch == architecture:
            return arch
    return f"{architecture}/{variant}" if variant else architecture


@dataclass(frozen=True)
class ImageDigests:
    """What was built: the image index digest and each architecture's manifest digest."""

    name: str
    index_digest: str
    manifests: Mapping[str, str] = field(default_factory=dict)  # Debian arch -> digest

    @classmethod
    def from_built(cls, built: BuiltImage, name: str) -> ImageDigests:
        """The digests ``kiln.assemble.build_image`` reported."""
        return cls(name, built.index_digest, {i.arch: str(i.manifest.digest) for i in built.images})

    def subjects(self) -> tuple[Subject, ...]:
        """Index first, then each platform manifest (``<name>@linux/<arch>``), by arch."""
        found = [Subject.of(self.name, self.index_digest)]
        found.extend(
            Subject.of(f"{self.name}@linux/{arch}", digest)
            for arch, digest in sorted(self.manifests.items())
        )
        return tuple(found)

    @classmethod
    def from_layout(
        cls, path: Path, *, name: str | None = None, ref_name: str | None = None
    ) -> ImageDigests:
        """Read an OCI image layout (every manifest verified against its digest)."""
        layout = ImageLayout.open(path)
        top = layout.select(ref_name)
        image_name = name or path.name
        if top.media_type != OCI_INDEX:
            return cls(image_name, str(top.digest), {})
        parsed = layout.manifest(top).parsed
        if not isinstance(parsed, ImageIndex):
            raise InputError(f"{path}: {top.digest} is declared an index but is a manifest")
        per_arch: dict[str, str] = {}
        for child in parsed.manifests:
            if child.media_type != OCI_MANIFEST or child.platform is None:
                continue
            arch = _debian_arch(child.platform.architecture, child.platform.variant)
            if arch in per_arch:
                raise InputError(f"{path}: the image index lists {arch} twice")
            per_arch[arch] = str(child.digest)
        return cls(image_name, str(top.digest), per_arch)


def sbom_statement(subjects: Sequence[Subject], document: Mapping[str, Any]) -> Statement:
    """An SPDX 2.3 or CycloneDX 1.6 JSON SBOM as a statement (type read from the document)."""
    if document.get("spdxVersion") == "SPDX-2.3":
        predicate_type = SPDX_2_3
    elif document.get("bomFormat") == "CycloneDX" and document.get("specVersion") == "1.6":
        predicate_type = CYCLONEDX_1_6
    else:
        raise InputError(
            "the SBOM is neither SPDX 2.3 JSON (spdxVersion) nor CycloneDX 1.6 JSON "
            "(bomFormat/specVersion)"
        )
    return make_statement(subjects, predicate_type, document)


def vex_statement(subjects: Sequence[Subject], document: Mapping[str, Any]) -> Statement:
    """An OpenVEX document as a statement."""
    context = str(document.get("@context", ""))
    if not context.startswith("https://openvex.dev/ns"):
        raise InputError(f"the VEX document's @context is {context!r}, not an OpenVEX one")
    return make_statement(subjects, OPENVEX_0_2, document)


def ctrf_statement(subjects: Sequence[Subject], report: Mapping[str, Any]) -> Statement:
    """A CTRF test report (as ``kiln test`` writes it) as a statement."""
    if report.get("reportFormat") != "CTRF" or not isinstance(report.get("results"), dict):
        raise InputError("the test report is not CTRF JSON (reportFormat/results)")
    return make_statement(subjects, TEST_REPORT_CTRF, report)


def image_signature_statement(
    name: str, digest: str, *, media_type: str, repository: str | None = None
) -> Statement:
    """The statement that signs one manifest or index: subject = its digest."""
    predicate: dict[str, Any] = {"mediaType": media_type}
    if repository:
        predicate["repository"] = repository
    return make_statement([Subject.of(name, digest)], IMAGE_SIGNATURE, predicate)


def detect_predicate_type(document: Mapping[str, Any]) -> str | None:
    """The predicate type a JSON document reads as (SBOM, VEX, CTRF, provenance), or None."""
    if "spdxVersion" in document:
        return SPDX_2_3
    if document.get("bomFormat") == "CycloneDX":
        return CYCLONEDX_1_6
    if str(document.get("@context", "")).startswith("https://openvex.dev/ns"):
        return OPENVEX_0_2
    if document.get("reportFormat") == "CTRF":
        return TEST_REPORT_CTRF
    if "buildDefinition" in document and "runDetails" in document:
        return PROVENANCE_V1
    return None


def statement_for(
    predicate_type: str, subjects: Sequence[Subject], document: Mapping[str, Any]
) -> Statement:
    """The statement of ``document`` under ``predicate_type`` (checked for known types)."""
    if predicate_type in {SPDX_2_3, CYCLONEDX_1_6}:
        statement = sbom_statement(subjects, document)
        if statement.predicate_type != predicate_type:
            raise InputError(
                f"the document is {predicate_name(statement.predicate_type)}, "
                f"not {predicate_name(predicate_type)}"
            )
        return statement
    if predicate_type == OPENVEX_0_2:
        return vex_statement(subjects, document)
    if predicate_type == TEST_REPORT_CTRF:
        return ctrf_statement(subjects, document)
    return make_statement(subjects, predicate_type, document)
