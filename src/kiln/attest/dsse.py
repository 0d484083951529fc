"""DSSE (Dead Simple Signing Envelope) v1: sign a typed payload, verify it again.

The signature covers ``PAE(payloadType, payload)`` (pre-authentication encoding), so a
payload cannot be replayed under another type. The envelope JSON is
``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig": b64}]}``.
Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md and
https://github.com/secure-systems-lab/dsse/blob/master/envelope.md
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.attest.keys import Signer, Verifier
from kiln.attest.statement import IN_TOTO_PAYLOAD_TYPE
from kiln.errors import RemoteContentError

MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``; LEN = ASCII decimal bytes."""
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        [b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload]
    )


def b64decode_strict(text: str, *, what: str) -> bytes:
    """Standard base64 with padding, nothing else (JSON protobuf ``bytes``)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise RemoteContentError(f"{what} is not valid base64: {exc}") from exc


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class EnvelopeSignature(BaseModel):
    """One signature of an envelope; ``keyid`` is an unauthenticated hint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sig: str = Field(min_length=1)
    keyid: str = ""


class Envelope(BaseModel):
    """A DSSE envelope as JSON carries it (base64 payload and signatures)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    payload: str
    payload_type: str = Field(alias="payloadType", min_length=1)
    # a few signers at most; the cap bounds the work a hostile envelope can cause
    signatures: tuple[EnvelopeSignature, ...] = Field(min_length=1, max_length=MAX_SIGNATURES)

    def payload_bytes(self) -> bytes:
        return b64decode_strict(self.payload, what="DSSE payload")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: object, *, where: str) -> Envelope:
        try:
            envelope = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            raise RemoteContentError(
                f"{where}: DSSE envelope field {path}: {first['msg']}"
            ) from exc
        b64decode_strict(envelope.payload, what=f"{where}: DSSE payload")  # refuse it early
        for i, signature in enumerate(envelope.signatures):
            b64decode_strict(signature.sig, what=f"{where}: DSSE signatures[{i}].sig")
        return envelope


def sign_envelope(
    payload: bytes, signer: Signer, *, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> Envelope:
    """Sign ``payload`` with one key."""
    signature = signer.sign(pae(payload_type, payload))
    return Envelope(
        payload=b64encode(payload),
        payload_type=payload_type,
        signatures=(EnvelopeSignature(sig=b64encode(signature), keyid=signer.key_id),),
    )


def envelope_verifies(envelope: Envelope, verifier: Verifier) -> bool:
    """Whether any signature of ``envelope`` verifies with ``verifier``'s key.

    Key ids are hints (the spec forbids trusting them), so every signature is tried.
    """
    message = pae(envelope.payload_type, envelope.payload_bytes())
    for signature in envelope.signatures:
        raw = b64decode_strict(signature.sig, what="DSSE signature")
        if verifier.verify(message, raw):
            return True
    return False
