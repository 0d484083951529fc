"""Publish a built image: attest what was observed, push it, attach the attestations.

The orchestrator (this module), not the build, writes the provenance: it records the
lock, the spec digest, the image digests it read back from the layout and the times it
measured. Signing keys never enter the build sandbox. Every statement is DSSE-signed
into a Sigstore bundle and attached as an OCI referrer (referrers API, or the
``sha256-<hex>`` tag fallback): image signatures, SLSA provenance, SPDX and CycloneDX
SBOMs per platform, and the CTRF test report.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.assemble import BuiltImage
from kiln.attest import (
    CYCLONEDX_1_6,
    IMAGE_SIGNATURE,
    LOCAL_BUILDER_ID,
    PROVENANCE_V1,
    SPDX_2_3,
    TEST_REPORT_CTRF,
    Attestation,
    BundleSigner,
    EcdsaVerifier,
    ImageDigests,
    KeyBundleSigner,
    ProvenanceInputs,
    Subject,
    VerificationError,
    attach_attestations,
    attest_image,
    default_policy,
    detect_git_source,
    fetch_bundles,
    sign_image,
    statement_for,
    verify_image,
)
from kiln.errors import InputError
from kiln.pipeline.tags import tags_for
from kiln.registry import (
    Digest,
    Reference,
    RegistryClient,
    RegistryNotFoundError,
    TransferStats,
    push_layout,
)
from kiln.resolve.lockfile import Lock
from kiln.sbom import SbomFormat, SbomInput, read_sbom_input, render_sbom
from kiln.spec import LoadedSpec


@dataclass(frozen=True)
class Destination:
    """``HOST[:PORT][/PREFIX]``: images go to ``HOST/PREFIX/<image-name>``."""

    registry: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> Destination:
        host, _, prefix = text.strip("/").partition("/")
        if not host:
            raise InputError(f"--registry {text!r}: expected HOST[:PORT][/PREFIX]")
        probe = Reference.parse(f"{host}/{prefix + '/' if prefix else ''}x:probe")
        return cls(probe.registry, prefix)

    def repository(self, image: str) -> str:
        return f"{self.prefix}/{image}" if self.prefix else image


@dataclass(frozen=True)
class BuildObservation:
    """What the orchestrator saw while building and testing one variant."""

    loaded: LoadedSpec
    lock: Lock
    variant: str
    built: BuiltImage
    started_on: dt.datetime
    finished_on: dt.datetime
    test_report: Mapping[str, Any] | None
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Published:
    reference: str  # repository@digest
    tags: tuple[str, ...]
    attestations: int
    uploaded_bytes: int  # blobs + manifests, image and attestations
    image_blobs_sent: int  # layers/configs the registry did not have yet


def _sent_of(stats: TransferStats) -> int:
    return stats.blob_bytes_uploaded + stats.manifest_bytes_uploaded


def _sent(client: RegistryClient) -> int:
    return _sent_of(client.stats)


#: What a published kiln image carries; a re-publish with all of them valid is a no-op.
PUBLISHED_TYPES = (IMAGE_SIGNATURE, PROVENANCE_V1, SPDX_2_3, CYCLONEDX_1_6, TEST_REPORT_CTRF)


def already_attested(
    client: RegistryClient,
    destination: Destination,
    image: str,
    index_digest: str,
    signer: BundleSigner,
) -> bool:
    """Whether the registry holds this exact image with every attestation, signed by us.

    Then a warm publish only refreshes the tags: the same digest was built from the same
    lock, tested and attested before. Keyless signers always attest anew.
    """
    if not isinstance(signer, KeyBundleSigner):
        return False
    repository = destination.repository(image)
    digest = Digest.parse(index_digest, what="image digest")
    try:
        if not client.manifest_exists(repository, digest):
            return False
        bundles = fetch_bundles(client, repository, digest)
    except RegistryNotFoundError:
        return False
    verifier = EcdsaVerifier.from_pem(signer.signer.public_key_pem(), where="the signing key")
    try:
        verify_image(bundles, index_digest, verifier, default_policy(required=PUBLISHED_TYPES))
    except VerificationError:
        return False
    return True


def attestations_for(
    seen: BuildObservation, signer: BundleSigner, *, builder_id: str = LOCAL_BUILDER_ID
) -> tuple[Attestation, ...]:
    """Every signed statement about one built variant (pure apart from reading the layout)."""
    spec = seen.loaded.spec
    name = spec.name if seen.variant == "runtime" else f"{spec.name}-{seen.variant}"
    digests = ImageDigests.from_built(seen.built, name)
    installed_by_arch = {
        image.arch: read_sbom_input(
            seen.built.layout, platform=f"linux/{image.arch}", lock=seen.lock
        )
        for image in seen.built.images
    }
    provenance = ProvenanceInputs(
        image=digests,
        lock=seen.lock,
        variant=seen.variant,
        spec_path=str(seen.loaded.path),
        spec_sha256=seen.loaded.sha256,
        builder_id=builder_id,
        invocation_id=str(uuid.uuid4()),
        started_on=seen.started_on,
        finished_on=seen.finished_on,
        source_date_epoch=seen.built.source_date_epoch,
        source=detect_git_source(seen.loaded.path),
        options=dict(seen.options),
        rebuilt=_rebuilt(installed_by_arch.values()),
    )
    documents: list[tuple[str, Mapping[str, Any]]] = []
    if seen.test_report is not None:
        documents.append((TEST_REPORT_CTRF, seen.test_report))
    found = [
        *sign_image(digests, signer),
        *attest_image(digests, signer, provenance=provenance, documents=documents),
    ]
    for image in seen.built.images:
        # One SBOM per platform, about that platform's manifest within this index.
        subjects = [
            Subject.of(name, digests.index_digest),
            Subject.of(f"{name}@linux/{image.arch}", image.manifest.digest),
        ]
        installed = installed_by_arch[image.arch]
        formats: tuple[tuple[SbomFormat, str], ...] = (
            ("spdx-json", SPDX_2_3),
            ("cyclonedx-json", CYCLONEDX_1_6),
        )
        for fmt, predicate_type in formats:
            sbom = render_sbom(installed, fmt)
            statement = statement_for(predicate_type, subjects, json.loads(sbom))
            found.append(
                Attestation(
                    predicate_type,
                    signer.sign_statement(statement),
                    (digests.index_digest, image.manifest.digest),
                )
            )
    return tuple(found)


def _rebuilt(inputs: Iterable[SbomInput]) -> dict[str, dict[str, str]]:
    """``name=version`` -> how kiln rebuilt it (Kiln-* control fields), for provenance."""
    found: dict[str, dict[str, str]] = {}
    for inp in inputs:
        for package in inp.packages:
            if package.kiln_build:
                key = f"{package.name}={package.version}"
                found[key] = dict(package.kiln_build)
    return found


def publish(
    seen: BuildObservation,
    attestations: Sequence[Attestation],
    *,
    client: RegistryClient,
    destination: Destination,
) -> Published:
    """Push the layout under every conventional tag, then attach the attestations.

    Tags are written only after all blobs and manifests are stored (``push_layout``);
    attestations go up after the image they refer to exists.
    """
    repository = destination.repository(seen.loaded.spec.name)
    tags = tags_for(seen.built.tag, seen.variant)
    target = Reference.parse(f"{destination.registry}/{repository}:{tags[0]}")
    before = client.stats
    result = push_layout(
        client, Path(seen.built.layout), target, ref_name=seen.built.tag, extra_tags=tags[1:]
    )
    attach_attestations(client, repository, attestations)
    return Published(
        reference=f"{destination.registry}/{repository}@{result.digest}",
        tags=result.tags,
        attestations=len(attestations),
        uploaded_bytes=_sent(client) - _sent_of(before),
        image_blobs_sent=result.stats.blobs_uploaded,
    )
