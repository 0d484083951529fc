"""DSSE envelopes and Sigstore bundles: exact encodings, cross-checks, hostile input."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from sigstore import dsse as sigstore_dsse
from sigstore.models import Bundle as SigstorePythonBundle
from sigstore.models import InvalidBundle
from sigstore_models.bundle.v1 import Bundle as BundleModel

from kiln.attest import (
    BUNDLE_MEDIA_TYPE,
    IMAGE_SIGNATURE,
    IN_TOTO_PAYLOAD_TYPE,
    EcdsaSigner,
    Envelope,
    Statement,
    envelope_verifies,
    image_signature_statement,
    pae,
    parse_bundle,
    sign_envelope,
    sign_statement,
)
from kiln.errors import RemoteContentError

from .helpers import IMAGE


def _statement() -> Statement:
    return image_signature_statement(
        "tiny", IMAGE.index_digest, media_type="application/vnd.oci.image.index.v1+json"
    )


def test_pae_matches_the_dsse_spec_test_vector() -> None:
    # protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # lengths are bytes, not characters
    assert pae("t\u00e9", b"") == "DSSEv1 3 t\u00e9 0 ".encode()


def test_pae_agrees_with_sigstore_python() -> None:
    payload = _statement().to_json()
    assert pae(IN_TOTO_PAYLOAD_TYPE, payload) == sigstore_dsse._pae(IN_TOTO_PAYLOAD_TYPE, payload)


def test_envelope_signature_verifies_with_sigstore_python(signer: EcdsaSigner) -> None:
    envelope = sign_envelope(_statement().to_json(), signer)
    theirs = sigstore_dsse.Envelope._from_json(json.dumps(envelope.to_json()))
    assert sigstore_dsse._verify(signer.private_key.public_key(), theirs) == _statement().to_json()


def test_envelope_rejects_tampering_and_other_keys(
    signer: EcdsaSigner, other_signer: EcdsaSigner
) -> None:
    envelope = sign_envelope(b'{"hello": "world"}', signer)
    assert envelope_verifies(envelope, signer.verifier())
    assert not envelope_verifies(envelope, other_signer.verifier())
    tampered = envelope.model_copy(
        update={"payload": base64.b64encode(b'{"hello":"moon"}').decode()}
    )
    assert not envelope_verifies(tampered, signer.verifier())
    retyped = envelope.model_copy(update={"payload_type": "application/json"})
    assert not envelope_verifies(retyped, signer.verifier())


def test_bundle_shape(signer: EcdsaSigner) -> None:
    bundle = json.loads(sign_statement(_statement(), signer))
    assert (
        bundle["mediaType"] == BUNDLE_MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    )
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": signer.key_id},
        "tlogEntries": [],
    }
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == signer.key_id
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == IMAGE_SIGNATURE
    assert statement["subject"] == [
        {"name": "tiny", "digest": {"sha256": IMAGE.index_digest.split(":")[1]}}
    ]


def test_the_official_bundle_models_read_our_bundle(signer: EcdsaSigner) -> None:
    data = sign_statement(_statement(), signer)
    theirs = BundleModel.from_json(data)
    assert theirs.dsse_envelope is not None
    assert theirs.dsse_envelope.payload == _statement().to_json()
    assert theirs.verification_material.public_key is not None
    assert theirs.verification_material.public_key.hint == signer.key_id


def test_sigstore_python_verifies_only_certificate_bundles(signer: EcdsaSigner) -> None:
    # Recorded limitation: sigstore-python's Bundle demands a Fulcio certificate in v0.3
    # bundles, so key-signed bundles are checked by @sigstore/verify (test_peer_verify).
    with pytest.raises(InvalidBundle, match="expected certificate"):
        SigstorePythonBundle.from_json(sign_statement(_statement(), signer))


def test_parse_bundle_round_trip(signer: EcdsaSigner) -> None:
    data = sign_statement(_statement(), signer)
    parsed = parse_bundle(data, where="bundle.json")
    assert parsed.public_key_hint == signer.key_id
    assert parsed.tlog_entries == 0
    assert parsed.certificate_der is None
    assert parsed.envelope is not None
    assert envelope_verifies(parsed.envelope, signer.verifier())
    assert parsed.statement(where="bundle.json") == _statement()


def _mutated(signer: EcdsaSigner, change: Callable[[Any], object]) -> bytes:
    document = json.loads(sign_statement(_statement(), signer))
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.2+json"),
            "mediaType",
        ),
        (lambda d: d.pop("dsseEnvelope"), "Exactly one of messageSignature or dsseEnvelope"),
        (lambda d: d["verificationMaterial"].pop("publicKey"), "Exactly one of publicKey"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["dsseEnvelope"].update(payload="!!not base64!!"), "base64"),
        (lambda d: d["dsseEnvelope"].update(payload="aGk=!!"), "not valid base64"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "signatures"),
        (
            lambda d: d["dsseEnvelope"].update(signatures=d["dsseEnvelope"]["signatures"] * 17),
            "signatures: Tuple should have at most 16 items",
        ),
        (
            lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="***"),
            "signatures.0.sig|not valid base64",
        ),
    ],
)
def test_hostile_bundles_are_refused(
    signer: EcdsaSigner, change: Callable[[Any], object], message: str
) -> None:
    with pytest.raises(RemoteContentError, match=message) as caught:
        parse_bundle(_mutated(signer, change), where="evil.sigstore.json")
    assert "evil.sigstore.json" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b"{}", "mediaType is None"),
        (b" " * (17 * 1024 * 1024), "larger than"),
    ],
)
def test_non_bundles_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(RemoteContentError, match=message):
        parse_bundle(data, where="x.json")


def test_a_bundle_must_carry_an_in_toto_statement(signer: EcdsaSigner) -> None:
    other_type = sign_envelope(b"{}", signer, payload_type="application/json")
    from kiln.attest import make_bundle

    parsed = parse_bundle(make_bundle(other_type, key_hint="k"), where="b")
    with pytest.raises(RemoteContentError, match="payloadType is 'application/json'"):
        parsed.statement(where="b")
    not_a_statement = sign_envelope(b'{"_type": "https://in-toto.io/Statement/v0.1"}', signer)
    parsed = parse_bundle(make_bundle(not_a_statement, key_hint="k"), where="b")
    with pytest.raises(RemoteContentError, match="_type is"):
        parsed.statement(where="b")
    no_subject = sign_envelope(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [],
                "predicateType": "x",
                "predicate": {},
            }
        ).encode(),
        signer,
    )
    parsed = parse_bundle(make_bundle(no_subject, key_hint="k"), where="b")
    with pytest.raises(RemoteContentError, match="statement field subject"):
        parsed.statement(where="b")


def test_envelope_from_json_names_the_field() -> None:
    with pytest.raises(RemoteContentError, match="DSSE envelope field payloadType"):
        Envelope.from_json({"payload": "", "signatures": [{"sig": "AA=="}]}, where="w")
