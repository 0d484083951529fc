"""Content digests as the OCI image spec defines them: ``algorithm ":" encoded``.

Only the registered algorithms kiln can verify are accepted (sha256, sha512), each with
its exact lowercase hex length. See https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#digests
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from kiln.errors import InputError

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")


def _problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable digest, or None when it is."""
    algorithm, sep, encoded = text.partition(":")
    if not sep:
        return "has no ':' between algorithm and hex"
    if algorithm not in _HEX_LENGTH:
        return f"uses algorithm {algorithm!r}; kiln accepts sha256 and sha512"
    if not _HEX.fullmatch(encoded):
        return "has characters other than lowercase hex after the algorithm"
    if len(encoded) != _HEX_LENGTH[algorithm]:
        return f"has {len(encoded)} hex digits; {algorithm} needs {_HEX_LENGTH[algorithm]}"
    return None


@dataclass(frozen=True, order=True)
class Digest:
    """A verified-shape content digest such as ``sha256:<64 hex>``."""

    algorithm: str
    encoded: str

    def __post_init__(self) -> None:
        problem = _problem(f"{self.algorithm}:{self.encoded}")
        if problem:
            raise InputError(f"digest {self.algorithm}:{self.encoded!r} {problem}")

    @classmethod
    def parse(cls, text: str, *, what: str = "digest") -> Digest:
        """Parse ``alg:hex``; ``what`` names the field in the error message."""
        problem = _problem(text)
        if problem:
            raise InputError(f"{what} {text!r} {problem}")
        algorithm, _, encoded = text.partition(":")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` under ``algorithm``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm, to verify streamed bytes."""
        return hashlib.new(self.algorithm)

    def matches(self, hasher: hashlib._Hash) -> bool:
        """Whether a finished hash object equals this digest."""
        return hasher.name == self.algorithm and hasher.hexdigest() == self.encoded

    @property
    def fallback_tag(self) -> str:
        """The referrers tag schema name: ``<alg>-<ref>``, ref truncated to 64 chars."""
        return f"{self.algorithm}-{self.encoded[:64]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_for_pydantic,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def _validate_for_pydantic(value: object) -> Digest:
    if isinstance(value, Digest):
        return value
    if not isinstance(value, str):
        raise ValueError(f"digest must be a string, not {type(value).__name__}")  # noqa: TRY004
    problem = _problem(value)
    if problem:
        raise ValueError(f"digest {value!r} {problem}")
    algorithm, _, encoded = value.partition(":")
    return Digest(algorithm, encoded)
