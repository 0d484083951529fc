"""Verify images on a real registry: bundles attached as OCI referrers, found again.

docker-registry 2.8 has no referrers API, so discovery runs through kiln's referrers
tag fallback for real (tests/fixtures/registry.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fixtures.registry import RunningRegistry
from kiln.attest import (
    PREDICATE_TYPE_ANNOTATION,
    EcdsaSigner,
    ImageDigests,
    ProvenanceInputs,
    VerificationError,
    attach_bundle,
    default_policy,
    fetch_bundles,
    image_signature_statement,
    provenance_statement,
    sign_statement,
    verify_reference,
)
from kiln.attest.predicates import IMAGE_SIGNATURE, PROVENANCE_V1, SPDX_2_3, sbom_statement
from kiln.registry import (
    OCI_INDEX,
    SIGSTORE_BUNDLE,
    Descriptor,
    Reference,
    RegistryClient,
    attach_artifact,
    list_referrers,
    push_layout,
)
from registry.helpers import client_for
from registry.layouts import write_layout


@dataclasses.dataclass(frozen=True)
class Published:
    client: RegistryClient
    reference: Reference
    subject: Descriptor
    digests: ImageDigests


def _publish(registry: RunningRegistry, tmp_path: Path, repository: str) -> Published:
    client = client_for(registry)
    layout = write_layout(tmp_path / repository.replace("/", "-"), seed=repository)
    reference = Reference.parse(f"{registry.host}/{repository}:1.0")
    subject = push_layout(client, layout.path, reference).descriptor
    digests = ImageDigests.from_layout(layout.path, name=repository)
    assert digests.index_digest == str(subject.digest)
    return Published(client, reference, subject, digests)


def _attest(
    published: Published,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
    *,
    signed_digest: str | None = None,
) -> None:
    signature = image_signature_statement(
        published.digests.name,
        signed_digest or published.digests.index_digest,
        media_type=OCI_INDEX,
    )
    provenance = provenance_statement(
        dataclasses.replace(
            provenance_inputs,
            image=dataclasses.replace(published.digests, manifests={}),
        )
    )
    sbom = sbom_statement(published.digests.subjects(), {"spdxVersion": "SPDX-2.3", "name": "x"})
    for statement, kind in (
        (signature, IMAGE_SIGNATURE),
        (provenance, PROVENANCE_V1),
        (sbom, SPDX_2_3),
    ):
        attach_bundle(
            published.client,
            published.reference.repository,
            published.subject,
            sign_statement(statement, signer),
            predicate_type=kind,
        )


def test_verify_a_published_image_by_tag_and_digest(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    published = _publish(registry, tmp_path, "kiln/tiny")
    _attest(published, signer, provenance_inputs)
    policy = default_policy(required=[SPDX_2_3])
    report = verify_reference(published.client, published.reference, signer.verifier(), policy)
    assert report.image_digest == published.digests.index_digest
    assert len(report.bundles) == 3
    by_digest = dataclasses.replace(published.reference, tag=None, digest=published.subject.digest)
    assert verify_reference(published.client, by_digest, signer.verifier(), policy).outcome.ok
    # the referrers carry the predicate type for tools that filter on it
    referrers = list_referrers(
        published.client, "kiln/tiny", published.subject.digest, artifact_type=SIGSTORE_BUNDLE
    )
    assert sorted((r.annotations or {})[PREDICATE_TYPE_ANNOTATION] for r in referrers) == sorted(
        [IMAGE_SIGNATURE, PROVENANCE_V1, SPDX_2_3]
    )


def test_wrong_key_against_the_registry(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    other_signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    published = _publish(registry, tmp_path, "kiln/wrongkey")
    _attest(published, signer, provenance_inputs)
    with pytest.raises(VerificationError, match="wrong key: the image signature"):
        verify_reference(
            published.client, published.reference, other_signer.verifier(), default_policy()
        )


def test_unsigned_image_on_the_registry(
    registry: RunningRegistry, tmp_path: Path, signer: EcdsaSigner
) -> None:
    published = _publish(registry, tmp_path, "kiln/unsigned")
    with pytest.raises(VerificationError, match="unsigned image") as caught:
        verify_reference(published.client, published.reference, signer.verifier(), default_policy())
    assert caught.value.exit_code == 1


def test_a_signature_over_another_digest_attached_to_this_image(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    published = _publish(registry, tmp_path, "kiln/moved")
    other = "sha256:" + "e" * 64
    _attest(published, signer, provenance_inputs, signed_digest=other)
    with pytest.raises(
        VerificationError, match=f"signature over another digest: .* covers {other}"
    ):
        verify_reference(published.client, published.reference, signer.verifier(), default_policy())


def test_corrupt_and_foreign_referrers_are_reported(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    published = _publish(registry, tmp_path, "kiln/corrupt")
    _attest(published, signer, provenance_inputs)
    problem = _set_aside(published, signer, b"this is not a bundle")
    assert "not JSON" in problem

    # the signature bundle's bytes rot on the registry's disk: a digest mismatch, reported
    signature = next(
        r
        for r in list_referrers(published.client, "kiln/corrupt", published.subject.digest)
        if (r.annotations or {}).get(PREDICATE_TYPE_ANNOTATION) == IMAGE_SIGNATURE
    )
    artifact = published.client.get_manifest("kiln/corrupt", signature.digest)
    registry.blob_file(json.loads(artifact.data)["layers"][0]["digest"]).write_bytes(b"rotten")
    with pytest.raises(VerificationError, match="unsigned image") as caught:
        verify_reference(published.client, published.reference, signer.verifier(), default_policy())
    assert any("does not match its digest" in d for d in caught.value.details)


def test_a_deeply_nested_referrer_is_set_aside_and_the_valid_bundles_decide(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    # anyone with push access can attach an unsigned referrer nesting 5,000 levels
    published = _publish(registry, tmp_path, "kiln/nested")
    _attest(published, signer, provenance_inputs)
    problem = _set_aside(published, signer, b'{"mediaType":' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert "the Sigstore bundle nests arrays/objects deeper than 128 levels" in problem


def _set_aside(published: Published, signer: EcdsaSigner, payload: bytes) -> str:
    """Attach ``payload`` as a bundle referrer; verification passes and names it unreadable."""
    repository = published.reference.repository
    junk = attach_artifact(
        published.client,
        repository,
        published.subject,
        artifact_type=SIGSTORE_BUNDLE,
        payload=payload,
        payload_media_type=SIGSTORE_BUNDLE,
    )
    assert len(fetch_bundles(published.client, repository, published.subject.digest)) == 4
    report = verify_reference(
        published.client, published.reference, signer.verifier(), default_policy()
    )
    assert report.outcome.ok
    (problem,) = [b for b in report.bundles if b.problem]
    assert str(junk.digest) in problem.source
    return problem.problem or ""


def test_a_signed_referrer_of_another_image_names_the_other_digest(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    # image B's valid signature referrer, listed in image A's referrers tag
    image_a = _publish(registry, tmp_path, "kiln/moved-a")
    image_b = _publish(registry, tmp_path, "kiln/moved-b")
    _attest(image_b, signer, provenance_inputs)
    client = image_a.client
    for referrer in list_referrers(client, "kiln/moved-b", image_b.subject.digest):
        artifact = client.get_manifest("kiln/moved-b", referrer.digest)
        layers = json.loads(artifact.data)["layers"]
        client.push_blob(
            "kiln/moved-a",
            Descriptor.model_validate(layers[0]),
            client.fetch_blob(
                "kiln/moved-b", Descriptor.model_validate(layers[0]).digest, max_bytes=1 << 24
            ),
        )
        client.push_blob(
            "kiln/moved-a",
            Descriptor.of(b"{}", "application/vnd.oci.empty.v1+json"),
            b"{}",
        )
        client.put_manifest("kiln/moved-a", artifact)
    index = client.get_manifest("kiln/moved-b", image_b.subject.digest.fallback_tag)
    client.put_manifest("kiln/moved-a", index, image_a.subject.digest.fallback_tag)

    with pytest.raises(VerificationError) as caught:
        verify_reference(client, image_a.reference, signer.verifier(), default_policy())
    assert caught.value.message == (
        f"{image_a.digests.index_digest} failed verification: signature over another "
        f"digest: the image signature in registry {registry.host}: kiln/moved-a@"
        f"{_signature_digest(client, 'kiln/moved-a', image_a)} covers "
        f"{image_b.digests.index_digest}, not {image_a.digests.index_digest}"
    )


def _signature_digest(client: RegistryClient, repository: str, published: Published) -> str:
    return next(
        str(r.digest)
        for r in list_referrers(client, repository, published.subject.digest)
        if (r.annotations or {}).get(PREDICATE_TYPE_ANNOTATION) == IMAGE_SIGNATURE
    )
