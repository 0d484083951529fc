"""Sigstore bundles v0.3: a DSSE envelope plus what a verifier needs to check it.

kiln's key-based bundles carry ``verificationMaterial.publicKey.hint`` (the key id, see
``kiln.attest.keys``) and an empty ``tlogEntries`` list: nothing is uploaded to a
transparency log (Rekor), so verifiers must be told not to require one (the Sigstore JS
verifier: ``tlogThreshold: 0, timestampThreshold: 0``; cosign: ``--insecure-ignore-tlog``).
Keyless bundles (``kiln.attest.keyless``) carry a Fulcio certificate and a Rekor entry.

The JSON shape is the protobuf-specs JSON mapping of ``dev.sigstore.bundle.v1.Bundle``
(camelCase names, ``bytes`` as standard base64); bundles are checked against
sigstore-python's generated models (``sigstore_models``) both when written and when read.
Spec: https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto
and https://docs.sigstore.dev/about/bundle
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError
from sigstore_models.bundle.v1 import Bundle as _BundleModel

from kiln.attest.dsse import Envelope, b64decode_strict, sign_envelope
from kiln.attest.keys import Signer
from kiln.attest.statement import IN_TOTO_PAYLOAD_TYPE, Statement, parse_statement
from kiln.errors import RemoteContentError
from kiln.jsonlimits import parse_json
from kiln.oci.model import canonical_json
from kiln.registry import SIGSTORE_BUNDLE

BUNDLE_MEDIA_TYPE = SIGSTORE_BUNDLE  # application/vnd.dev.sigstore.bundle.v0.3+json
_MAX_BUNDLE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SigstoreBundle:
    """A parsed bundle: its exact bytes and the parts kiln's verifier reads."""

    data: bytes
    media_type: str
    envelope: Envelope | None  # None for message-signature bundles (not statements)
    public_key_hint: str | None
    certificate_der: bytes | None  # keyless bundles: the Fulcio leaf certificate
    tlog_entries: int

    def statement(self, *, where: str) -> Statement:
        """The in-toto statement inside (not yet signature-checked)."""
        if self.envelope is None:
            raise RemoteContentError(
                f"{where}: the bundle signs a message, not a DSSE in-toto statement"
            )
        if self.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise RemoteContentError(
                f"{where}: DSSE payloadType is {self.envelope.payload_type!r}, "
                f"not {IN_TOTO_PAYLOAD_TYPE!r}"
            )
        return parse_statement(self.envelope.payload_bytes(), where=where)


def make_bundle(envelope: Envelope, *, key_hint: str) -> bytes:
    """The bundle JSON bytes for a key-signed envelope (no transparency log entry)."""
    document: dict[str, Any] = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}, "tlogEntries": []},
        "dsseEnvelope": envelope.to_json(),
    }
    _BundleModel.model_validate(document)  # the official shape, or a bug here
    return canonical_json(document)


def parse_bundle(data: bytes, *, where: str) -> SigstoreBundle:
    """Parse bundle bytes from a registry or file; ``where`` names them in errors."""
    raw = parse_json(
        data,
        where=where,
        max_bytes=_MAX_BUNDLE_BYTES,
        what="the Sigstore bundle",
        error=RemoteContentError,
    )
    if not isinstance(raw, dict):
        raise RemoteContentError(
            f"{where}: the Sigstore bundle is a JSON {type(raw).__name__}, not an object"
        )
    media_type = raw.get("mediaType")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise RemoteContentError(
            f"{where}: bundle mediaType is {media_type!r}, not {BUNDLE_MEDIA_TYPE!r}",
            hint="kiln reads Sigstore bundle v0.3",
        )
    try:
        model = _BundleModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise RemoteContentError(f"{where}: bundle field {path}: {first['msg']}") from exc
    material = raw["verificationMaterial"]
    envelope = (
        Envelope.from_json(raw["dsseEnvelope"], where=where)
        if model.dsse_envelope is not None
        else None
    )
    hint = (
        model.verification_material.public_key.hint
        if model.verification_material.public_key
        else None
    )
    certificate = None
    if isinstance(material.get("certificate"), dict):
        certificate = b64decode_strict(
            str(material["certificate"].get("rawBytes", "")),
            what=f"{where}: verificationMaterial.certificate.rawBytes",
        )
    return SigstoreBundle(
        data=data,
        media_type=media_type,
        envelope=envelope,
        public_key_hint=hint,
        certificate_der=certificate,
        tlog_entries=len(model.verification_material.tlog_entries),
    )


class BundleSigner(Protocol):
    """Turns a statement into a signed Sigstore bundle (key-based or keyless)."""

    def sign_statement(self, statement: Statement) -> bytes:
        """The bundle JSON bytes."""
        ...


@dataclass(frozen=True)
class KeyBundleSigner:
    """Signs statements with any ``Signer`` (local key, KMS, HSM): DSSE + bundle."""

    signer: Signer

    def sign_statement(self, statement: Statement) -> bytes:
        envelope = sign_envelope(statement.to_json(), self.signer)
        return make_bundle(envelope, key_hint=self.signer.key_id)


def sign_statement(statement: Statement, signer: Signer) -> bytes:
    """Shorthand: DSSE-sign ``statement`` with ``signer`` and wrap it in a bundle."""
    return KeyBundleSigner(signer).sign_statement(statement)
