"""Container images on disk as an in-memory root filesystem, digests verified.

Reads an OCI image layout directory or its tar form (an "OCI archive"), per
https://github.com/opencontainers/image-spec/blob/main/image-layout.md, and the
``docker save`` tar ("docker-archive": ``manifest.json`` + config + layer tars,
https://github.com/moby/moby/blob/master/image/spec/v1.2.md). For an index with
several platforms one is chosen (``linux/amd64`` by default). Layers (uncompressed,
gzip or zstd, detected from their magic bytes) are streamed straight into a
``LayerTree``: nothing is extracted to disk, and every blob's digest and size is
checked against its descriptor. The image is a local input (a registry pull has
verified every blob before it lands on disk), so a mismatch is an ``InputError``
(exit 2). Every JSON document is parsed with ``kiln.jsonlimits``' bounds.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from typing import IO, Annotated, Protocol, TypeVar, cast

import zstandard
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import InputError, Location
from kiln.inventory.tree import LayerTree
from kiln.jsonlimits import parse_json
from kiln.oci.digest import Digest
from kiln.oci.layout import HashingReader, LayoutError, verify_bytes
from kiln.oci.model import (
    DEFAULT_PLATFORM,
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    choose_platform,
    parse_platform,
    platform_matches,
)

_DIGEST = r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"
_MAX_JSON_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
_M = TypeVar("_M", bound=BaseModel)
_END_OF_ARCHIVE = 1024  # two 512-byte zero blocks (POSIX ustar)
_ALTERED = "the image was altered or damaged after it was written; save or copy it again"


# OCI says readers MUST ignore unknown properties, so these models ignore extras. The
# OCI documents themselves (descriptors, indexes, manifests) are kiln.oci's models.
class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class DockerArchiveEntry(_Model):
    config: str = Field(alias="Config")
    repo_tags: tuple[str, ...] | None = Field(default=None, alias="RepoTags")
    layers: tuple[str, ...] = Field(alias="Layers")


class _RootFS(_Model):
    diff_ids: tuple[Annotated[str, Field(pattern=_DIGEST)], ...]


class ImageConfig(_Model):
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    rootfs: _RootFS


class Archive(Protocol):
    """Named files of an image: a layout directory or the members of a tar."""

    label: str

    def has(self, name: str) -> bool: ...

    def open(self, name: str) -> IO[bytes]: ...


class DirArchive:
    def __init__(self, root: str) -> None:
        self.root = root
        self.label = root

    def has(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.root, name))

    def open(self, name: str) -> IO[bytes]:
        # names are fixed (index.json) or built from validated digests: no traversal
        path = os.path.join(self.root, name)
        if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block
            raise LayoutError(f"{self.label}: {name} is not a regular file")
        return open(path, "rb")


class TarArchive:
    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.label = label
        self._tar = tar
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            if member.isreg():
                self._members[os.path.normpath(member.name).lstrip("/")] = member

    def has(self, name: str) -> bool:
        return os.path.normpath(name) in self._members

    def open(self, name: str) -> IO[bytes]:
        member = self._members.get(os.path.normpath(name))
        handle = None if member is None else self._tar.extractfile(member)
        if handle is None:
            raise FileNotFoundError(name)
        return handle


def _blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.encoded}"


def _load_json_model(archive: Archive, name: str, model: type[_M], data: bytes | None = None) -> _M:
    where = f"{archive.label}/{name}"
    if data is None:
        try:
            with archive.open(name) as handle:
                data = handle.read(_MAX_JSON_BYTES + 1)
        except OSError as exc:
            raise InputError(f"{where}: cannot read: {exc}") from exc
        if len(data) > _MAX_JSON_BYTES:
            raise InputError(f"{where}: larger than {_MAX_JSON_BYTES} bytes")
    document = parse_json(data, where=where, max_bytes=_MAX_JSON_BYTES, what="the file")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"invalid {model.__name__}: {first['msg']}",
            location=Location(where, field=field or None),
        ) from exc


def _read_blob(archive: Archive, descriptor: Descriptor, what: str) -> bytes:
    """A small blob (manifest, index, config), verified against its descriptor."""
    name = _blob_path(descriptor.digest)
    if descriptor.size > _MAX_JSON_BYTES:
        raise LayoutError(f"{archive.label}: {what} {descriptor.digest} is too large")
    try:
        with archive.open(name) as handle:
            data = handle.read(descriptor.size + 1)
    except OSError as exc:
        raise LayoutError(f"{archive.label}: {what} blob {name} is missing") from exc
    _check(archive, what, descriptor.digest, descriptor.size, data)
    return data


def _check(archive: Archive, what: str, digest: Digest, size: int | None, data: bytes) -> None:
    where = f"{archive.label}: {what} {digest}"
    verify_bytes(data, digest, size, where=where, hint=_ALTERED)


def _layer_tree_from_oci(archive: Archive, platform: str | None, tree: LayerTree) -> None:
    if not archive.has("oci-layout"):
        raise InputError(f"{archive.label}: no oci-layout file; not an OCI image layout")
    index = _load_json_model(archive, "index.json", ImageIndex)
    where = f"{archive.label}/index.json"
    descriptor = choose_platform(index, platform, where)
    for _ in range(4):  # index -> (nested index ->) manifest; bounded against cycles
        data = _read_blob(archive, descriptor, "manifest")
        kind = descriptor.media_type
        if kind in INDEX_TYPES:
            nested = _load_json_model(archive, _blob_path(descriptor.digest), ImageIndex, data)
            descriptor = choose_platform(nested, platform, str(descriptor.digest))
            continue
        if kind not in IMAGE_MANIFEST_TYPES:
            raise InputError(f"{archive.label}: {descriptor.digest} has media type {kind!r}")
        manifest = _load_json_model(archive, _blob_path(descriptor.digest), ImageManifest, data)
        _read_blob(archive, manifest.config, "config")
        for number, layer in enumerate(manifest.layers):
            _apply_layer(
                tree,
                archive,
                _blob_path(layer.digest),
                number,
                f"layer {layer.digest}",
                digest=str(layer.digest),
                size=layer.size,
                diff_id=None,
            )
        return
    raise InputError(f"{archive.label}: image indexes nest deeper than 4 levels")


def _digest_from_name(name: str) -> str | None:
    """``blobs/sha256/<hex>`` or ``<hex>.json`` in a docker-archive names its digest."""
    match = re.search(r"(?:^|/)(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?$", name)
    return f"sha256:{match[1]}" if match and ("blobs/" in name or name.endswith(".json")) else None


def _layer_tree_from_docker(archive: Archive, platform: str | None, tree: LayerTree) -> None:
    where = f"{archive.label}/manifest.json"
    try:
        with archive.open("manifest.json") as handle:
            raw = handle.read(_MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{where}: cannot read: {exc}") from exc
    document = parse_json(
        raw, where=where, max_bytes=_MAX_JSON_BYTES, what="the docker-archive manifest"
    )
    try:
        entries = [DockerArchiveEntry.model_validate(e) for e in document]
    except (TypeError, ValidationError) as exc:
        raise InputError(f"{where}: not a docker-archive manifest: {exc}") from exc
    if not entries:
        raise InputError(f"{where}: lists no images")
    configs: list[tuple[DockerArchiveEntry, ImageConfig]] = []
    for entry in entries:
        try:
            with archive.open(entry.config) as handle:
                data = handle.read(_MAX_JSON_BYTES)
        except OSError as exc:
            raise InputError(f"{where}: config {entry.config!r} is missing") from exc
        expected = _digest_from_name(entry.config)
        if expected is not None:
            _check(archive, "config", Digest.parse(expected), None, data)
        configs.append((entry, _load_json_model(archive, entry.config, ImageConfig, data)))
    entry, config = configs[0]
    if len(configs) > 1 or platform is not None:
        wanted = parse_platform(platform or DEFAULT_PLATFORM)
        for candidate, candidate_config in configs:
            plat = Platform(
                os=candidate_config.os or "",
                architecture=candidate_config.architecture or "",
                variant=candidate_config.variant,
            )
            if platform_matches(plat, wanted):
                entry, config = candidate, candidate_config
                break
        else:
            if len(configs) > 1:
                raise InputError(f"{where}: no image for platform {'/'.join(wanted)}")
    if len(config.rootfs.diff_ids) != len(entry.layers):
        raise InputError(
            f"{where}: {len(entry.layers)} layers but the config lists "
            f"{len(config.rootfs.diff_ids)} diff_ids"
        )
    for number, (name, diff_id) in enumerate(
        zip(entry.layers, config.rootfs.diff_ids, strict=True)
    ):
        _apply_layer(
            tree,
            archive,
            name,
            number,
            f"layer {name}",
            digest=_digest_from_name(name),
            size=None,
            diff_id=diff_id,
        )


def layer_tar_stream(stream: HashingReader) -> IO[bytes]:
    """The layer's tar stream: gzip and zstd are recognised by their magic bytes."""
    buffered = io.BufferedReader(stream, buffer_size=_CHUNK)
    head = buffered.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head == b"\x28\xb5\x2f\xfd":
        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
            buffered, read_across_frames=True
        )
        return reader
    return buffered


LAYER_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    zstandard.ZstdError,
)


def _apply_layer(
    tree: LayerTree,
    archive: Archive,
    name: str,
    number: int,
    label: str,
    *,
    digest: str | None,
    size: int | None,
    diff_id: str | None,
) -> None:
    try:
        raw = archive.open(name)
    except OSError as exc:
        raise InputError(f"{archive.label}: {label} is missing ({name})") from exc
    with raw:
        algorithm = digest.partition(":")[0] if digest else "sha256"
        compressed = HashingReader(raw, algorithm)
        broken: BaseException | None = None
        uncompressed: HashingReader | None = None
        try:
            stream = layer_tar_stream(compressed)
            uncompressed = HashingReader(stream, (diff_id or "sha256:").partition(":")[0])
            with tarfile.open(fileobj=uncompressed, mode="r|") as tar:
                tree.apply_layer(tar, number, label)
            uncompressed.drain()
        except LAYER_ERRORS as exc:
            broken = exc
        try:
            compressed.drain()
        except OSError as exc:
            raise InputError(f"{archive.label}: cannot read {label}: {exc}") from exc
    if digest is not None:
        algo, _, expected = digest.partition(":")
        actual = compressed.hash.hexdigest()
        if actual != expected or (size is not None and compressed.size != size):
            promised = f"; the manifest says {size} bytes" if size is not None else ""
            raise LayoutError(
                f"{archive.label}: {label} does not match its digest "
                f"(got {algo}:{actual}, {compressed.size} bytes{promised})",
                hint=_ALTERED,
            )
    if broken is not None:
        raise InputError(f"{archive.label}: {label} is not a readable tar: {broken}") from broken
    if uncompressed is not None and not _ends_properly(uncompressed.size, uncompressed.tail):
        tree.warnings.append(f"{archive.label}: {label} has no end-of-archive marker (truncated?)")
    if diff_id is not None and uncompressed is not None:
        actual = uncompressed.hash.hexdigest()
        if f"{diff_id.partition(':')[0]}:{actual}" != diff_id:
            raise LayoutError(
                f"{archive.label}: {label} does not match its diff_id {diff_id} (got {actual})",
                hint=_ALTERED,
            )


def _ends_properly(size: int, tail: bytes) -> bool:
    return size % 512 == 0 and len(tail) == _END_OF_ARCHIVE and not tail.strip(b"\0")


def _check_not_empty(path: str) -> None:
    """Refuse a tar that starts with a zero block: an empty archive, or a zero-filled file.

    Python's tarfile reads either as an archive with no members, which would scan as an
    image holding nothing (0 packages, exit 0).
    """
    with open(path, "rb") as handle:
        if handle.read(512).strip(b"\0"):
            return
        while chunk := handle.read(_CHUNK):
            if chunk.strip(b"\0"):
                raise InputError(
                    f"{path}: not an image: the tar archive ends at its first block "
                    "(an empty archive followed by other data)"
                )
    raise InputError(
        f"{path}: not an image: the file holds only zero bytes (an empty tar archive)",
        hint="a zero-filled file is what a failed or unfinished copy leaves; save it again",
    )


def _check_complete(path: str) -> None:
    """Refuse an uncompressed archive cut short: tarfile stops silently at a cut header."""
    with open(path, "rb") as handle:
        if handle.read(2) in (b"\x1f\x8b", b"\x28\xb5"):
            return  # compressed: the decompressor notices truncation
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _END_OF_ARCHIVE))
        if not _ends_properly(size, handle.read()):
            raise InputError(
                f"{path}: truncated tar archive (no end-of-archive marker)",
                hint="the file was cut short; copy or save the image again",
            )


def _open_tar(path: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable tar archive: {exc}") from exc


def tree_from_layout(path: str, platform: str | None = None) -> LayerTree:
    """The root filesystem of the chosen image in an OCI image layout directory."""
    tree = LayerTree()
    _layer_tree_from_oci(DirArchive(path), platform, tree)
    return tree


def tree_from_image_tar(path: str, platform: str | None = None) -> LayerTree:
    """The root filesystem in an OCI archive, a docker-archive, or a plain rootfs tar."""
    tree = LayerTree()
    _check_not_empty(path)
    _check_complete(path)
    with _open_tar(path) as tar:
        try:
            archive = TarArchive(tar, path)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise InputError(f"{path}: not a readable tar archive: {exc}") from exc
        work: Callable[[Archive, str | None, LayerTree], None]
        if archive.has("oci-layout") and archive.has("index.json"):
            work = _layer_tree_from_oci
        elif archive.has("manifest.json"):
            work = _layer_tree_from_docker
        else:
            work = _rootfs_tar(path)
        try:
            work(archive, platform, tree)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: not a readable tar archive: {exc}") from exc
    return tree


def _rootfs_tar(path: str) -> Callable[[Archive, str | None, LayerTree], None]:
    """A tar that is neither image format: read it as a single-layer root filesystem."""

    def work(_archive: Archive, _platform: str | None, tree: LayerTree) -> None:
        with open(path, "rb") as raw:
            _apply_layer(
                tree, _Path(raw), "", 0, "rootfs tar", digest=None, size=None, diff_id=None
            )

    return work


class _Path:
    """An ``Archive`` of one already-open file (the rootfs tar itself)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.label = handle.name if isinstance(handle.name, str) else "tar"

    def has(self, name: str) -> bool:
        return True

    def open(self, name: str) -> IO[bytes]:
        return self._handle
