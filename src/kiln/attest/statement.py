"""in-toto Statement v1: the signed claim "this predicate is about these artifacts".

A statement binds a predicate (provenance, SBOM, test report, ...) to subjects named
by digest. kiln writes statements as canonical JSON (sorted keys, no whitespace) so
the same facts always give the same bytes, and reads them back only through
``parse_statement``, which refuses anything outside the v1 shape.
Spec: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiln.errors import RemoteContentError
from kiln.jsonlimits import parse_json
from kiln.oci.model import canonical_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

# Digest algorithms of the in-toto digest set kiln writes and checks, with hex lengths.
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")


class Subject(BaseModel):
    """One artifact a statement is about: a name and its digests (``{"sha256": hex}``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    digest: dict[str, str] = Field(min_length=1)

    @field_validator("digest")
    @classmethod
    def _known_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for algorithm, encoded in value.items():
            expected = _HEX_LENGTH.get(algorithm)
            if expected is not None and (len(encoded) != expected or not _HEX.fullmatch(encoded)):
                raise ValueError(f"{algorithm} digest {encoded!r} is not {expected} lowercase hex")
        return value

    @classmethod
    def of(cls, name: str, digest: str) -> Subject:
        """A subject from an OCI-style digest string ``alg:hex``."""
        algorithm, sep, encoded = digest.partition(":")
        if not sep:
            raise ValueError(f"subject {name}: digest {digest!r} has no ':'")
        return cls(name=name, digest={algorithm: encoded})

    def oci_digests(self) -> frozenset[str]:
        """The subject's digests as ``alg:hex`` strings (how OCI names content)."""
        return frozenset(f"{alg}:{hex_}" for alg, hex_ in self.digest.items())


class Statement(BaseModel):
    """An in-toto v1 statement; ``predicate`` is kept as the JSON object it is."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(
        default="https://in-toto.io/Statement/v1", alias="_type"
    )
    subject: tuple[Subject, ...] = Field(min_length=1)
    predicate_type: str = Field(alias="predicateType", min_length=1)
    predicate: dict[str, Any]

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys, no whitespace): what gets signed."""
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    def subject_digests(self) -> frozenset[str]:
        """Every subject digest as ``alg:hex``."""
        return frozenset().union(*(s.oci_digests() for s in self.subject))


def make_statement(
    subjects: Sequence[Subject], predicate_type: str, predicate: Mapping[str, Any]
) -> Statement:
    """Build a statement (pure); raises ``ValueError`` on an empty subject list."""
    if not subjects:
        raise ValueError("an in-toto statement needs at least one subject")
    return Statement(
        subject=tuple(subjects), predicate_type=predicate_type, predicate=dict(predicate)
    )


def parse_statement(payload: bytes, *, where: str) -> Statement:
    """Parse statement bytes from a DSSE payload; ``where`` names the source in errors."""
    # the payload came inside a bundle, which was already bounded
    raw = parse_json(
        payload,
        where=where,
        max_bytes=len(payload),
        what="the in-toto statement",
        error=RemoteContentError,
    )
    if not isinstance(raw, dict):
        raise RemoteContentError(
            f"{where}: the statement is a JSON {type(raw).__name__}, not an object"
        )
    if raw.get("_type") != STATEMENT_TYPE:
        raise RemoteContentError(
            f"{where}: _type is {raw.get('_type')!r}, not {STATEMENT_TYPE!r}",
            hint="kiln reads in-toto Statement v1 only",
        )
    try:
        return Statement.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise RemoteContentError(f"{where}: statement field {path}: {first['msg']}") from exc
