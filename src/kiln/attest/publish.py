"""Sign an image and its attestations, and attach the bundles to it in a registry.

The orchestrator (``kiln publish``) calls ``sign_image`` and ``attest_image`` after the
build and the tests, outside any sandbox, then ``attach_attestations`` once the image
is pushed. Each bundle is attached as an OCI referrer of every manifest its statement
is about: the image signatures to the index or platform manifest they sign, the
whole-image attestations (provenance, SBOMs, test report, VEX) to the index and to each
platform manifest, so ``kiln verify`` works on either digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kiln.attest.bundle import BundleSigner
from kiln.attest.predicates import ImageDigests, image_signature_statement, statement_for
from kiln.attest.provenance import ProvenanceInputs, provenance_statement
from kiln.attest.statement import Statement
from kiln.attest.verify import attach_bundle
from kiln.errors import InputError
from kiln.registry import OCI_INDEX, OCI_MANIFEST, Descriptor, Digest, RegistryClient


@dataclass(frozen=True)
class Attestation:
    """A signed statement ready to attach: its type, bundle and the digests it refers to."""

    predicate_type: str
    bundle: bytes
    attach_to: tuple[str, ...]  # manifest/index digests this bundle becomes a referrer of


def sign_image(digests: ImageDigests, signer: BundleSigner) -> tuple[Attestation, ...]:
    """Image-signature bundles: one for the index, one for each platform manifest."""
    targets = [
        (digests.name, digests.index_digest, OCI_INDEX if digests.manifests else OCI_MANIFEST)
    ]
    targets += [
        (f"{digests.name}@linux/{arch}", digest, OCI_MANIFEST)
        for arch, digest in sorted(digests.manifests.items())
    ]
    found = []
    for name, digest, media_type in targets:
        statement = image_signature_statement(name, digest, media_type=media_type)
        found.append(
            Attestation(statement.predicate_type, signer.sign_statement(statement), (digest,))
        )
    return tuple(found)


def _whole_image(statement: Statement, signer: BundleSigner) -> Attestation:
    digests = tuple(sorted(statement.subject_digests()))
    return Attestation(statement.predicate_type, signer.sign_statement(statement), digests)


def attest_image(
    digests: ImageDigests,
    signer: BundleSigner,
    *,
    provenance: ProvenanceInputs | None = None,
    documents: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> tuple[Attestation, ...]:
    """Signed provenance and documents (``(predicate_type, document)``: SBOMs, CTRF, VEX).

    Subjects are the image index and every platform manifest; the provenance must be
    about the same image.
    """
    found = []
    if provenance is not None:
        if provenance.image != digests:
            raise InputError(
                f"the provenance is about {provenance.image.index_digest}, "
                f"not the image being attested ({digests.index_digest})"
            )
        found.append(_whole_image(provenance_statement(provenance), signer))
    for predicate_type, document in documents:
        statement = statement_for(predicate_type, digests.subjects(), document)
        found.append(_whole_image(statement, signer))
    return tuple(found)


def attach_attestations(
    client: RegistryClient, repository: str, attestations: Sequence[Attestation]
) -> tuple[Descriptor, ...]:
    """Attach every bundle to each manifest it refers to (pushed already); descriptors out."""
    subjects: dict[str, Descriptor] = {}
    attached = []
    for attestation in attestations:
        for digest in attestation.attach_to:
            if digest not in subjects:
                parsed = Digest.parse(digest, what="attestation subject")
                subjects[digest] = client.get_manifest(repository, parsed).descriptor
            attached.append(
                attach_bundle(
                    client,
                    repository,
                    subjects[digest],
                    attestation.bundle,
                    predicate_type=attestation.predicate_type,
                )
            )
    return tuple(attached)
