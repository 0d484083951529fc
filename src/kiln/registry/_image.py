"""Whole images: push an OCI image layout to a reference, pull a reference into one.

Push order is content first, names last: every blob, then every child manifest, then
the top manifest or index by digest, and only then its tags, so a tag never points at
something incomplete even when the registry fails half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kiln.errors import InputError, IntegrityError
from kiln.oci.digest import Digest
from kiln.oci.layout import ImageLayout, blob_path, index_entry, write_index, write_marker
from kiln.oci.model import Descriptor, ImageIndex, Manifest
from kiln.oci.staging import commit_directory, discard_staging, new_staging_dir
from kiln.registry._client import RegistryClient, TransferStats
from kiln.registry._reference import Reference, validate_tag


@dataclass(frozen=True)
class PushResult:
    """A pushed image: its reference by digest, its descriptor, and what was sent."""

    reference: Reference
    descriptor: Descriptor
    tags: tuple[str, ...]
    stats: TransferStats

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest


@dataclass(frozen=True)
class PullResult:
    """A pulled image: the layout written and what was received."""

    reference: Reference
    descriptor: Descriptor
    path: Path
    stats: TransferStats


def _check_host(client: RegistryClient, reference: Reference) -> None:
    if reference.registry != client.registry:
        raise InputError(
            f"reference {reference} is on {reference.registry}, this client talks to "
            f"{client.registry}"
        )


def push_layout(
    client: RegistryClient,
    layout_path: Path,
    target: Reference,
    *,
    ref_name: str | None = None,
    extra_tags: tuple[str, ...] = (),
    mount_from: tuple[str, ...] = (),
) -> PushResult:
    """Push the image ``index.json`` names (or the one called ``ref_name``) to ``target``.

    Tags ``target.tag`` and ``extra_tags`` once everything else is stored. If ``target``
    carries a digest, the layout's image must have exactly that digest.
    """
    _check_host(client, target)
    tags = tuple(dict.fromkeys(t for t in (target.tag, *extra_tags) if t))
    for tag in tags:
        validate_tag(tag)
    layout = ImageLayout.open(layout_path)
    top = layout.select(ref_name)
    if target.digest is not None and target.digest != top.digest:
        raise InputError(f"{layout_path} holds {top.digest}, but {target} asks for {target.digest}")
    before = client.stats
    repository = target.repository
    top_manifest = _push_tree(
        client,
        layout=layout,
        repository=repository,
        descriptor=top,
        mount_from=mount_from,
        seen=set(),
    )
    for tag in tags:
        client.tag(repository, top_manifest, tag)
    return PushResult(
        target.with_digest(top.digest), top_manifest.descriptor, tags, client.stats - before
    )


def _push_tree(
    client: RegistryClient,
    *,
    layout: ImageLayout,
    repository: str,
    descriptor: Descriptor,
    mount_from: tuple[str, ...],
    seen: set[Digest],
) -> Manifest:
    manifest = layout.manifest(descriptor)
    if descriptor.digest not in seen:
        seen.add(descriptor.digest)
        parsed = manifest.parsed
        if isinstance(parsed, ImageIndex):
            for child in parsed.manifests:
                _push_tree(
                    client,
                    layout=layout,
                    repository=repository,
                    descriptor=child,
                    mount_from=mount_from,
                    seen=seen,
                )
        else:
            for blob in (parsed.config, *parsed.layers):
                if blob.digest in seen:
                    continue
                seen.add(blob.digest)
                client.push_blob(repository, blob, layout.blob(blob.digest), mount_from=mount_from)
        if not client.manifest_exists(repository, manifest.digest):
            client.put_manifest(repository, manifest)
    return manifest


def pull_layout(client: RegistryClient, source: Reference, destination: Path) -> PullResult:
    """Pull ``source`` (index, manifests, configs, layers) into an OCI layout directory.

    Every byte is verified against its digest; the directory appears only complete.
    """
    _check_host(client, source)
    before = client.stats
    repository = source.repository
    top = client.get_manifest(repository, source.digest or source.identifier)
    if source.digest is None and source.tag is None:
        raise InputError(f"reference {source} has neither tag nor digest")
    staging = new_staging_dir(destination.absolute())
    try:
        write_marker(staging)
        _pull_tree(client, repository, top, staging, seen=set())
        write_index(staging, [index_entry(top.descriptor, source.tag)])
        commit_directory(staging, destination.absolute())
    except BaseException:
        discard_staging(staging)
        raise
    return PullResult(
        source.with_digest(top.digest), top.descriptor, destination, client.stats - before
    )


def _pull_tree(
    client: RegistryClient, repository: str, manifest: Manifest, root: Path, seen: set[Digest]
) -> None:
    if manifest.digest in seen:
        return
    seen.add(manifest.digest)
    target = blob_path(root, manifest.digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(manifest.data)
    parsed = manifest.parsed
    if isinstance(parsed, ImageIndex):
        for child in parsed.manifests:
            fetched = client.get_manifest(repository, child.digest)
            _check_descriptor(client, repository, child, fetched)
            _pull_tree(client, repository, fetched, root, seen)
        return
    for blob in (parsed.config, *parsed.layers):
        if blob.digest in seen:
            continue
        seen.add(blob.digest)
        client.pull_blob(repository, blob.digest, blob_path(root, blob.digest), size=blob.size)


def _check_descriptor(
    client: RegistryClient, repository: str, descriptor: Descriptor, fetched: Manifest
) -> None:
    if len(fetched.data) != descriptor.size:
        raise IntegrityError(
            f"registry {client.registry}: repository {repository}, manifest "
            f"{descriptor.digest}: got {len(fetched.data)} bytes, its index says "
            f"{descriptor.size}"
        )
