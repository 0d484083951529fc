"""OCI 1.1 referrers: attach artifacts (signatures, SBOMs, attestations) to an image.

An artifact is an image manifest with ``artifactType``, the empty config and one layer,
whose ``subject`` is the image. Registries with the referrers API say so by echoing
``OCI-Subject`` when the artifact is pushed, and list referrers at
``/v2/<name>/referrers/<digest>``. For the others (Debian's docker-registry among them)
kiln maintains the referrers tag schema: an index tagged ``<alg>-<hex>`` listing every
referrer, read, extended and re-pushed on each attach.
See https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
and https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#referrers-tag-schema
"""

from __future__ import annotations

from kiln.errors import RemoteContentError
from kiln.oci.digest import Digest
from kiln.oci.model import (
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Manifest,
)
from kiln.registry._client import RegistryClient
from kiln.registry._errors import RegistryNotFoundError
from kiln.registry._reference import validate_repository


def artifact_manifest(
    subject: Descriptor,
    *,
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str] | None = None,
) -> tuple[Manifest, Descriptor]:
    """Build (purely) the artifact manifest for ``payload``; returns it and the layer."""
    layer = Descriptor.of(payload, payload_media_type)
    model = ImageManifest(
        schema_version=2,
        media_type=OCI_MANIFEST,
        artifact_type=artifact_type,
        config=Descriptor.of(EMPTY_JSON, OCI_EMPTY),
        layers=(layer,),
        subject=Descriptor(media_type=subject.media_type, digest=subject.digest, size=subject.size),
        annotations=annotations or None,
    )
    return Manifest.from_model(model), layer


def attach_artifact(
    client: RegistryClient,
    repository: str,
    subject: Descriptor,
    *,
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str] | None = None,
) -> Descriptor:
    """Push ``payload`` as an artifact referring to ``subject``; return its descriptor."""
    validate_repository(repository)
    manifest, layer = artifact_manifest(
        subject,
        artifact_type=artifact_type,
        payload=payload,
        payload_media_type=payload_media_type,
        annotations=annotations,
    )
    client.push_blob(repository, Descriptor.of(EMPTY_JSON, OCI_EMPTY), EMPTY_JSON)
    client.push_blob(repository, layer, payload)
    stored = client.put_manifest(repository, manifest)
    descriptor = manifest.descriptor
    if stored.oci_subject == subject.digest:
        return descriptor  # the registry indexes referrers itself
    _add_to_fallback_tag(client, repository, subject.digest, descriptor)
    return descriptor


def _fallback_index(client: RegistryClient, repository: str, subject: Digest) -> ImageIndex:
    try:
        current = client.get_manifest(repository, subject.fallback_tag)
    except RegistryNotFoundError:
        return ImageIndex(schema_version=2, media_type=OCI_INDEX, manifests=())
    if not isinstance(current.parsed, ImageIndex):
        raise RemoteContentError(
            f"registry {client.registry}: repository {repository}, tag {subject.fallback_tag}: "
            "the referrers tag holds an image manifest, not an index",
            hint="something other than a referrers list uses this tag; remove it",
        )
    return current.parsed


def _add_to_fallback_tag(
    client: RegistryClient, repository: str, subject: Digest, referrer: Descriptor
) -> None:
    # Read-modify-write: concurrent attaches to one subject can lose an entry; registries
    # without the referrers API offer no conditional PUT to prevent it.
    index = _fallback_index(client, repository, subject)
    if any(entry.digest == referrer.digest for entry in index.manifests):
        return
    updated = index.model_copy(update={"manifests": (*index.manifests, referrer)})
    client.put_manifest(repository, Manifest.from_model(updated), subject.fallback_tag)


def list_referrers(
    client: RegistryClient,
    repository: str,
    subject: Digest,
    *,
    artifact_type: str | None = None,
) -> tuple[Descriptor, ...]:
    """The referrers of ``subject``: from the API, else from the referrers tag."""
    found = client.referrers_api(repository, subject, artifact_type=artifact_type)
    if found is not None:
        return found
    entries = _fallback_index(client, repository, subject).manifests
    if artifact_type is not None:
        entries = tuple(e for e in entries if e.artifact_type == artifact_type)
    return entries
