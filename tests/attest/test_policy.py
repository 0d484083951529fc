"""The verification policy, on bundles made in the test (pure: no registry, no clock)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kiln.attest import (
    CYCLONEDX_1_6,
    SPDX_2_3,
    AllOf,
    AnyOf,
    BuilderIdAllowed,
    EcdsaSigner,
    ImageSignature,
    MaxAge,
    ProvenanceForImage,
    ProvenanceInputs,
    RawBundle,
    RequiredAttestations,
    UnsafeNoOp,
    VerificationError,
    ctrf_statement,
    default_policy,
    image_signature_statement,
    provenance_statement,
    sbom_statement,
    verify_image,
)
from kiln.attest.policy import Policy

from .helpers import IMAGE, OTHER_IMAGE, bundle_of, tamper_payload

INDEX = "application/vnd.oci.image.index.v1+json"
FINISHED = dt.datetime(2026, 11, 20, 10, 0, 42, tzinfo=dt.UTC)
SPDX_DOC = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "tiny"}
CDX_DOC = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1}


def _signature(signer: EcdsaSigner, digest: str = IMAGE.index_digest) -> RawBundle:
    return bundle_of(image_signature_statement("tiny", digest, media_type=INDEX), signer, "sig")


def _provenance(signer: EcdsaSigner, inputs: ProvenanceInputs) -> RawBundle:
    return bundle_of(provenance_statement(inputs), signer, "provenance")


@pytest.fixture
def good(signer: EcdsaSigner, provenance_inputs: ProvenanceInputs) -> list[RawBundle]:
    subjects = IMAGE.subjects()
    return [
        _signature(signer),
        _provenance(signer, provenance_inputs),
        bundle_of(sbom_statement(subjects, SPDX_DOC), signer, "spdx"),
        bundle_of(sbom_statement(subjects, CDX_DOC), signer, "cyclonedx"),
    ]


def _verify(bundles: list[RawBundle], signer: EcdsaSigner, policy: Policy | None = None) -> str:
    """The first failure message, or 'ok'."""
    try:
        verify_image(bundles, IMAGE.index_digest, signer.verifier(), policy or default_policy())
    except VerificationError as exc:
        return exc.message
    return "ok"


def test_a_signed_image_with_provenance_and_sboms_passes(
    good: list[RawBundle], signer: EcdsaSigner
) -> None:
    policy = default_policy(
        required=[SPDX_2_3, CYCLONEDX_1_6],
        builder_ids=["https://kiln.dev/builders/test/v1"],
        max_age=dt.timedelta(days=30),
        now=FINISHED + dt.timedelta(days=1),
    )
    report = verify_image(good, IMAGE.index_digest, signer.verifier(), policy)
    assert report.outcome.ok
    assert report.key_id == signer.key_id
    assert len(report.outcome.passes) == 6
    assert all(b.signed for b in report.bundles)


def test_unsigned_image(good: list[RawBundle], signer: EcdsaSigner) -> None:
    message = _verify(good[1:], signer)
    assert message.endswith(f"unsigned image: no image signature refers to {IMAGE.index_digest}")
    assert _verify([], signer).endswith(
        "unsigned image: no image signature refers to " + IMAGE.index_digest
    )


def test_wrong_key(good: list[RawBundle], signer: EcdsaSigner, other_signer: EcdsaSigner) -> None:
    message = _verify(good, other_signer)
    assert "wrong key: the image signature in sig is signed with key " + signer.key_id in message
    assert f"does not verify with the given key {other_signer.key_id}" in message


def test_signature_over_another_digest(good: list[RawBundle], signer: EcdsaSigner) -> None:
    bundles = [_signature(signer, OTHER_IMAGE.index_digest), *good[1:]]
    message = _verify(bundles, signer)
    assert message.endswith(
        f"signature over another digest: the image signature in sig covers "
        f"{OTHER_IMAGE.index_digest}, not {IMAGE.index_digest}"
    )


def test_provenance_for_another_image(
    good: list[RawBundle], signer: EcdsaSigner, provenance_inputs: ProvenanceInputs
) -> None:
    import dataclasses

    other = dataclasses.replace(provenance_inputs, image=OTHER_IMAGE)
    bundles = [good[0], _provenance(signer, other)]
    message = _verify(bundles, signer)
    assert "provenance for another image: the SLSA provenance in provenance covers " in message
    assert f"not {IMAGE.index_digest}" in message


def test_the_four_attacks_read_differently(
    good: list[RawBundle],
    signer: EcdsaSigner,
    other_signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
) -> None:
    import dataclasses

    messages = {
        _verify(good[1:], signer),
        _verify(good, other_signer),
        _verify([_signature(signer, OTHER_IMAGE.index_digest), *good[1:]], signer),
        _verify(
            [
                good[0],
                _provenance(signer, dataclasses.replace(provenance_inputs, image=OTHER_IMAGE)),
            ],
            signer,
        ),
    }
    assert len(messages) == 4


def test_a_tampered_statement_no_longer_verifies(
    good: list[RawBundle], signer: EcdsaSigner
) -> None:
    original = good[0].data
    assert original is not None
    forged = tamper_payload(original, {"predicate": {"mediaType": INDEX, "note": "forged"}})
    message = _verify([RawBundle("sig", forged), *good[1:]], signer)
    assert message.startswith(f"{IMAGE.index_digest} failed verification: wrong key")


def test_missing_required_attestations_and_builder_ids(
    good: list[RawBundle], signer: EcdsaSigner
) -> None:
    policy = default_policy(required=[SPDX_2_3, "https://example.invalid/custom/v1"])
    with pytest.raises(VerificationError) as caught:
        verify_image(good, IMAGE.index_digest, signer.verifier(), policy)
    assert caught.value.message.endswith(
        "missing https://example.invalid/custom/v1 attestation "
        f"(https://example.invalid/custom/v1) for {IMAGE.index_digest}"
    )
    policy = default_policy(builder_ids=["https://kiln.dev/builders/ci/v1"])
    message = _verify(good, signer, policy)
    assert "builder id 'https://kiln.dev/builders/test/v1' is not allowed" in message


def test_an_sbom_signed_by_another_key_does_not_count(
    good: list[RawBundle], signer: EcdsaSigner, other_signer: EcdsaSigner
) -> None:
    foreign = bundle_of(sbom_statement(IMAGE.subjects(), SPDX_DOC), other_signer, "spdx")
    bundles = [*good[:2], foreign]
    message = _verify(bundles, signer, default_policy(required=[SPDX_2_3]))
    assert "wrong key: the SPDX SBOM in spdx" in message


def test_max_age(good: list[RawBundle], signer: EcdsaSigner) -> None:
    old = MaxAge(dt.timedelta(days=7), FINISHED + dt.timedelta(days=8))
    message = _verify(good, signer, old)
    assert "image too old: built 2026-11-20T10:00:42+00:00, 8 days, 0:00:00 ago" in message
    fresh = MaxAge(dt.timedelta(days=7), FINISHED + dt.timedelta(days=6))
    assert _verify(good, signer, fresh) == "ok"
    assert "no signed provenance" in _verify(good[:1], signer, fresh)


def test_all_of_any_of_and_the_unsafe_no_op(good: list[RawBundle], signer: EcdsaSigner) -> None:
    unsigned = good[1:]
    either = AnyOf((ImageSignature(), ProvenanceForImage()))
    assert _verify(unsigned, signer, either) == "ok"
    both = AllOf((ImageSignature(), ProvenanceForImage()))
    assert "unsigned image" in _verify(unsigned, signer, both)
    neither = AnyOf((ImageSignature(), BuilderIdAllowed(frozenset({"x"}))))
    assert "none of 2 alternatives holds" in _verify(unsigned, signer, neither)
    assert "empty policy list" in _verify(good, signer, AllOf(()))
    with pytest.warns(UserWarning, match="was NOT verified"):
        report = verify_image([], IMAGE.index_digest, signer.verifier(), UnsafeNoOp())
    assert report.outcome.warnings


def test_unreadable_bundles_are_reported_not_fatal(
    good: list[RawBundle], signer: EcdsaSigner
) -> None:
    junk = [RawBundle("junk", b"{not json"), RawBundle("lost", problem="blob missing")]
    report = verify_image([*junk, *good], IMAGE.index_digest, signer.verifier(), default_policy())
    assert [b.problem is not None for b in report.bundles[:2]] == [True, True]
    with pytest.raises(VerificationError) as caught:
        verify_image(junk, IMAGE.index_digest, signer.verifier(), default_policy())
    assert "(2 attached bundle(s) could not be read)" in caught.value.message
    assert any("junk: the Sigstore bundle is not JSON" in d for d in caught.value.details)


def test_a_keyless_bundle_is_named_as_such(
    good: list[RawBundle], signer: EcdsaSigner, other_signer: EcdsaSigner
) -> None:
    data = _signature(other_signer).data  # stands in for a Fulcio-certified ephemeral key
    assert data is not None
    document = json.loads(data)
    document["verificationMaterial"] = {"certificate": {"rawBytes": "MIIB"}, "tlogEntries": []}
    message = _verify([RawBundle("sig", json.dumps(document).encode()), *good[1:]], signer)
    assert "signed with a keyless (certificate) signature" in message


def test_a_per_arch_manifest_is_covered_by_provenance_but_needs_its_own_signature(
    good: list[RawBundle], signer: EcdsaSigner
) -> None:
    amd64 = IMAGE.manifests["amd64"]
    with pytest.raises(VerificationError, match=f"signature over another digest: .* not {amd64}"):
        verify_image(good, amd64, signer.verifier(), default_policy())
    signed = [_signature(signer, amd64), *good]
    report = verify_image(signed, amd64, signer.verifier(), default_policy())
    assert report.outcome.ok


def test_test_report_statement(signer: EcdsaSigner) -> None:
    report = {"reportFormat": "CTRF", "specVersion": "0.0.0", "results": {"tests": []}}
    statement = ctrf_statement(IMAGE.subjects(), report)
    assert statement.predicate_type == "https://kiln.dev/attestation/test-report/ctrf/v1"
    bundles = [_signature(signer), bundle_of(statement, signer, "ctrf")]
    policy = AllOf((ImageSignature(), RequiredAttestations((statement.predicate_type,))))
    assert _verify(bundles, signer, policy) == "ok"


def test_a_bad_image_digest_is_an_input_error(signer: EcdsaSigner) -> None:
    from kiln.errors import InputError

    with pytest.raises(InputError, match="image digest"):
        verify_image([], "sha256:short", signer.verifier(), default_policy())
