"""Manifests, indexes and descriptors as registries serve them (OCI image spec v1.1).

These models sit at a trust boundary, but the image spec requires implementations to
ignore unknown properties, and Docker's v2 schema 2 documents carry a few of their own;
so unknown keys are ignored (``extra="ignore"``) while every field kiln reads is
type-checked. The exact bytes are always kept beside the model: digests are computed
over those bytes, never over a re-serialisation.
See https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md and
https://github.com/opencontainers/image-spec/blob/v1.1.0/image-index.md
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import InputError, KilnError, RemoteContentError
from kiln.jsonlimits import parse_json
from kiln.oci.digest import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"

IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the limit the distribution spec lets registries set

# The empty JSON object ``{}``: the config of artifact manifests (image spec "guidance
# for an empty descriptor").
EMPTY_JSON = b"{}"


class Platform(BaseModel):
    """Where a manifest in an index runs."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    architecture: str
    os: str
    os_version: str | None = Field(default=None, alias="os.version")
    os_features: tuple[str, ...] | None = Field(default=None, alias="os.features")
    variant: str | None = None

    def __str__(self) -> str:
        """``os/architecture[/variant]``, as ``--platform`` takes it."""
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


class Descriptor(BaseModel):
    """A typed pointer to content: media type, digest and size (and optional extras)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    media_type: str = Field(alias="mediaType")
    digest: Digest
    size: int = Field(ge=0)
    urls: tuple[str, ...] | None = None
    annotations: dict[str, str] | None = None
    data: str | None = None
    platform: Platform | None = None
    artifact_type: str | None = Field(default=None, alias="artifactType")

    @classmethod
    def of(
        cls,
        data: bytes,
        media_type: str,
        *,
        artifact_type: str | None = None,
        annotations: dict[str, str] | None = None,
        platform: Platform | None = None,
    ) -> Descriptor:
        """The descriptor of ``data`` (sha256)."""
        return cls(
            media_type=media_type,
            digest=Digest.of(data),
            size=len(data),
            artifact_type=artifact_type,
            annotations=annotations,
            platform=platform,
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ImageManifest(BaseModel):
    """An OCI image manifest (also Docker's v2 schema 2 manifest, which has the same shape)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ImageIndex(BaseModel):
    """An OCI image index (also Docker's manifest list)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


#: The platform chosen from a multi-platform image when none is asked for.
DEFAULT_PLATFORM = "linux/amd64"


def parse_platform(text: str) -> tuple[str, ...]:
    """``os/arch`` or ``os/arch/variant`` (as ``--platform`` takes it) as a tuple."""
    parts = tuple(text.split("/"))
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError(f"platform {text!r} is not os/arch or os/arch/variant")
    return parts


def platform_matches(platform: Platform, wanted: tuple[str, ...]) -> bool:
    """Whether ``platform`` is ``wanted`` (a variant is compared only when asked for)."""
    if (platform.os, platform.architecture) != wanted[:2]:
        return False
    return len(wanted) == 2 or platform.variant == wanted[2]


def choose_platform(index: ImageIndex, platform: str | None, where: str) -> Descriptor:
    """The entry of ``index`` for ``platform`` (default ``DEFAULT_PLATFORM``).

    Entries of os ``unknown`` (buildx attestation manifests) are skipped. An index with
    a single image answers a request without a platform, and an untagged single image
    answers any (its platform is in its config, which the caller checks). Otherwise
    the exact platform, or ``InputError`` listing what there is.
    """
    candidates = [d for d in index.manifests if d.platform is None or d.platform.os != "unknown"]
    if not candidates:
        raise InputError(f"{where}: the index lists no image manifests")
    if len(candidates) == 1 and platform is None:
        return candidates[0]
    wanted = parse_platform(platform or DEFAULT_PLATFORM)
    for d in candidates:
        if d.platform is not None and platform_matches(d.platform, wanted):
            return d
    if len(candidates) == 1 and candidates[0].platform is None:
        return candidates[0]
    available = sorted(str(d.platform) for d in candidates if d.platform is not None)
    raise InputError(
        f"{where}: no image for platform {'/'.join(wanted)}",
        hint=f"available: {', '.join(available) or 'none with a platform'}; pass --platform",
    )


def canonical_json(value: object) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, UTF-8) for documents kiln writes.

    The one canonical form in kiln: OCI documents and layouts, lock files and cache keys
    of the assembler, in-toto statements and Sigstore bundles. Same value, same bytes,
    same digest.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as fetched or written: bytes, media type, digest, model."""

    data: bytes
    media_type: str
    digest: Digest
    parsed: ImageManifest | ImageIndex

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=len(self.data),
            artifact_type=_artifact_type(self.parsed),
            annotations=self.parsed.annotations,
        )

    @property
    def is_index(self) -> bool:
        return isinstance(self.parsed, ImageIndex)

    @classmethod
    def from_model(cls, model: ImageManifest | ImageIndex) -> Manifest:
        """Serialise a model kiln built into canonical bytes."""
        media_type = model.media_type or (
            OCI_INDEX if isinstance(model, ImageIndex) else OCI_MANIFEST
        )
        data = canonical_json(model.to_json())
        return cls(data, media_type, Digest.of(data), model)


def _artifact_type(model: ImageManifest | ImageIndex) -> str | None:
    if model.artifact_type:
        return model.artifact_type
    if isinstance(model, ImageManifest) and model.config.media_type != OCI_EMPTY:
        # Image spec: without artifactType, a referrer's type is its config media type.
        return model.config.media_type if model.subject is not None else None
    return None


def parse_manifest(
    data: bytes,
    media_type: str | None,
    digest: Digest,
    *,
    where: str,
    error: type[KilnError] = RemoteContentError,
) -> Manifest:
    """Parse manifest bytes whose digest the caller has already verified.

    ``media_type`` is the Content-Type the registry sent (or the descriptor's); when it
    is missing or generic the document's own ``mediaType`` decides. ``where`` names the
    registry, repository and reference for error messages; ``error`` is raised for bad
    content (``InputError`` for a local layout).
    """
    document = parse_json(
        data,
        where=where,
        max_bytes=MAX_MANIFEST_BYTES,
        what="the manifest",
        error=error,
    )
    if not isinstance(document, dict):
        raise error(f"{where}: manifest is a JSON {type(document).__name__}, not an object")
    declared = document.get("mediaType")
    kind = media_type.split(";")[0].strip() if media_type else ""
    if kind not in MANIFEST_TYPES:
        if isinstance(declared, str) and declared in MANIFEST_TYPES:
            kind = declared
        elif "manifests" in document:
            kind = OCI_INDEX
        elif "config" in document:
            kind = OCI_MANIFEST
        else:
            raise error(
                f"{where}: unsupported manifest media type {media_type or declared!r}",
                hint="kiln reads OCI manifests/indexes and Docker v2 schema 2 manifests/lists",
            )
    if isinstance(declared, str) and declared != kind:
        raise error(f"{where}: manifest says mediaType {declared!r} but was served as {kind!r}")
    model_type: type[ImageManifest | ImageIndex] = (
        ImageIndex if kind in INDEX_TYPES else ImageManifest
    )
    try:
        parsed = model_type.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise error(
            f"{where}: malformed {kind} at {location or 'top level'}: {first['msg']}",
            details=[f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[1:5]],
        ) from exc
    return Manifest(data, kind, digest, parsed)
