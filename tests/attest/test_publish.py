"""Signing and attesting an image, attaching the bundles, verifying either digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fixtures.registry import RunningRegistry
from kiln.attest import (
    CYCLONEDX_1_6,
    IMAGE_SIGNATURE,
    SPDX_2_3,
    TEST_REPORT_CTRF,
    EcdsaSigner,
    ImageDigests,
    KeyBundleSigner,
    ProvenanceInputs,
    attach_attestations,
    attest_image,
    default_policy,
    sign_image,
    verify_reference,
)
from kiln.errors import InputError
from kiln.registry import Reference, push_layout
from registry.helpers import client_for
from registry.layouts import write_layout

DOCUMENTS = (
    (SPDX_2_3, {"spdxVersion": "SPDX-2.3", "name": "tiny"}),
    (CYCLONEDX_1_6, {"bomFormat": "CycloneDX", "specVersion": "1.6"}),
    (TEST_REPORT_CTRF, {"reportFormat": "CTRF", "results": {"tests": []}}),
)


def test_publish_attestations_and_verify_index_and_platform_digests(
    registry: RunningRegistry,
    tmp_path: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    layout = write_layout(tmp_path / "tiny", seed="publish")
    digests = ImageDigests.from_layout(layout.path, name="kiln/pub")
    bundle_signer = KeyBundleSigner(signer)
    provenance = dataclasses.replace(provenance_inputs, image=digests)
    signatures = sign_image(digests, bundle_signer)
    assert [a.attach_to for a in signatures] == [
        (digests.index_digest,),
        (digests.manifests["amd64"],),
        (digests.manifests["arm64"],),
    ]
    attestations = attest_image(digests, bundle_signer, provenance=provenance, documents=DOCUMENTS)
    assert all(len(a.attach_to) == 3 for a in attestations)

    client = client_for(registry)
    reference = Reference.parse(f"{registry.host}/kiln/pub:1.0")
    push_layout(client, layout.path, reference)
    attached = attach_attestations(client, "kiln/pub", [*signatures, *attestations])
    assert len(attached) == 3 + 4 * 3

    policy = default_policy(required=[SPDX_2_3, CYCLONEDX_1_6, TEST_REPORT_CTRF])
    assert verify_reference(client, reference, signer.verifier(), policy).outcome.ok
    for digest in digests.manifests.values():
        by_digest = Reference.parse(f"{registry.host}/kiln/pub@{digest}")
        report = verify_reference(client, by_digest, signer.verifier(), policy)
        assert report.image_digest == digest
        assert {b.predicate_type for b in report.bundles} >= {IMAGE_SIGNATURE, SPDX_2_3}


def test_provenance_about_another_image_is_refused(
    signer: EcdsaSigner, provenance_inputs: ProvenanceInputs
) -> None:
    other = ImageDigests("tiny", "sha256:" + "c" * 64, {})
    with pytest.raises(InputError, match="the provenance is about"):
        attest_image(other, KeyBundleSigner(signer), provenance=provenance_inputs)
