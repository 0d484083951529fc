"""OCI image layout directories: open one, read its content verified, write one.

A layout is ``oci-layout`` (``{"imageLayoutVersion": "1.0.0"}``), ``index.json`` and
``blobs/<alg>/<hex>`` (https://github.com/opencontainers/image-spec/blob/v1.1.0/image-layout.md).
Every read goes through here and is verified: the blob's size against its descriptor
before it is read (so a huge file is never loaded), then its digest. A layout that is
missing, malformed, incomplete or does not match its digests raises ``LayoutError``,
an input error (exit 2) in every command: a layout on disk is something the user handed
kiln, even one kiln wrote, and a damaged one is rebuilt, not retried. (A registry's
content that does not match is ``kiln.errors.IntegrityError``, exit 3: that one may be
fetched again.)

Writes: ``write_blob`` (content-addressed, atomic), ``write_marker`` and
``write_index``; whole layouts are built in a staging directory and swapped in by
``kiln.oci.staging.commit_directory``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import zstandard
from pydantic import ValidationError

from kiln.errors import InputError, Location
from kiln.fileio import atomic_write
from kiln.jsonlimits import parse_json, read_json_file
from kiln.oci.digest import Digest
from kiln.oci.model import (
    INDEX_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    ImageIndex,
    Manifest,
    canonical_json,
    parse_manifest,
)

LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"
#: An image config is a small JSON document; the distribution spec's manifest limit.
MAX_CONFIG_BYTES = MAX_MANIFEST_BYTES


class LayoutError(InputError):
    """An OCI image layout that is malformed, incomplete or does not match its digests."""


def blob_path(root: Path, digest: Digest) -> Path:
    """Where ``digest``'s blob lives in the layout at ``root`` (whether or not it exists)."""
    return root / "blobs" / digest.algorithm / digest.encoded


def _digest(value: Digest | str, root: Path) -> Digest:
    if isinstance(value, Digest):
        return value
    try:
        return Digest.parse(value)
    except InputError as exc:
        raise LayoutError(f"{root}: {exc.message}") from exc


def _size_of(path: Path, root: Path, digest: Digest) -> int:
    """The blob's size; a missing blob, or one that is no regular file, is refused."""
    try:
        found = path.stat()
    except OSError as exc:
        raise LayoutError(
            f"{root}: blob {digest} is missing from blobs/ ({exc.strerror or exc})"
        ) from exc
    if not stat.S_ISREG(found.st_mode):  # a FIFO or device would block or never end
        raise LayoutError(f"{root}: blob {digest} is not a regular file")
    return found.st_size


def read_blob(
    root: Path,
    target: Descriptor | Digest | str,
    *,
    max_bytes: int,
    what: str = "blob",
) -> bytes:
    """The bytes of a blob, checked against its size (a descriptor's) and digest.

    The size is checked before reading, against the descriptor and ``max_bytes``, so a
    blob larger than it should be is never loaded. ``what`` names the blob in messages
    ("manifest", "config"...).
    """
    size = target.size if isinstance(target, Descriptor) else None
    digest = _digest(target.digest if isinstance(target, Descriptor) else target, root)
    path = blob_path(root, digest)
    actual = _size_of(path, root, digest)
    if size is not None and actual != size:
        raise LayoutError(
            f"{root}: {what} {digest} does not match its descriptor: "
            f"{actual} bytes, the descriptor says {size}"
        )
    if actual > max_bytes:
        raise LayoutError(f"{root}: {what} {digest} is {actual} bytes, over the {max_bytes} limit")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LayoutError(f"{root}: cannot read {what} {digest}: {exc.strerror or exc}") from exc
    verify_bytes(data, digest, actual, where=f"{root}: {what} {digest}")
    return data


def verify_bytes(
    data: bytes, digest: Digest, size: int | None, *, where: str, hint: str | None = None
) -> None:
    """Raise ``LayoutError`` unless ``data`` has ``digest`` (and ``size``, when given)."""
    found = Digest.of(data, digest.algorithm)
    if found != digest or (size is not None and len(data) != size):
        raise LayoutError(
            f"{where} does not match its digest (its {len(data)} bytes hash to {found})",
            hint=hint,
        )


def read_json_blob(
    root: Path, target: Descriptor | Digest | str, *, what: str, max_bytes: int = MAX_CONFIG_BYTES
) -> dict[str, Any]:
    """A verified blob parsed as a JSON object (bounded size and nesting)."""
    data = read_blob(root, target, max_bytes=max_bytes, what=what)
    digest = target.digest if isinstance(target, Descriptor) else target
    where = f"{root}: {what} {digest}"
    document = parse_json(data, where=where, max_bytes=max_bytes, what=what, error=LayoutError)
    if not isinstance(document, dict):
        raise LayoutError(f"{where} is a JSON {type(document).__name__}, not an object")
    return document


def open_blob(root: Path, target: Descriptor) -> IO[bytes]:
    """A stream of a (large) blob, its size checked; the reader verifies the digest.

    For layers, which are streamed: hash what you read (``Digest.hasher``) and compare
    with ``target.digest`` at the end, raising ``LayoutError``.
    """
    path = blob_path(root, target.digest)
    actual = _size_of(path, root, target.digest)
    if actual != target.size:
        raise LayoutError(
            f"{root}: blob {target.digest} does not match its descriptor: "
            f"{actual} bytes, the descriptor says {target.size}"
        )
    try:
        return path.open("rb")
    except OSError as exc:
        raise LayoutError(
            f"{root}: cannot read blob {target.digest}: {exc.strerror or exc}"
        ) from exc


_CHUNK = 1 << 20
_END_OF_ARCHIVE = 1024  # two 512-byte zero blocks (POSIX ustar)


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts what passes through it.

    Layers are streamed (through a decompressor, into a tar reader), never read whole:
    wrap the blob in this, read, then ``verify`` against the descriptor. ``tail`` keeps
    the last KiB read, for readers that check a tar ended properly.
    """

    def __init__(self, raw: IO[bytes], algorithm: str = "sha256") -> None:
        super().__init__()
        self._raw = raw
        self.hash = hashlib.new(algorithm)
        self.size = 0
        self.tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self.hash.update(data)
        self.size += len(data)
        self.tail = (self.tail + data)[-_END_OF_ARCHIVE:]
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read (and hash) the rest of the stream."""
        while self.read(_CHUNK):
            pass

    def matches(self, digest: Digest, size: int | None = None) -> bool:
        """Whether everything read so far has ``digest`` (and ``size``, when given)."""
        return (
            self.hash.name == digest.algorithm
            and self.hash.hexdigest() == digest.encoded
            and (size is None or self.size == size)
        )

    def verify(self, descriptor: Descriptor, where: str) -> None:
        """Drain the stream and raise ``LayoutError`` unless it matched ``descriptor``."""
        self.drain()
        if not self.matches(descriptor.digest, descriptor.size):
            raise LayoutError(
                f"{where} does not match its descriptor (got "
                f"{descriptor.digest.algorithm}:{self.hash.hexdigest()}, {self.size} bytes; "
                f"expected {descriptor.digest}, {descriptor.size} bytes)"
            )


def decompressed(media_type: str, raw: IO[bytes], *, where: str) -> IO[bytes]:
    """The tar stream of a layer of ``media_type`` (OCI or Docker; gzip, zstd or none).

    An unknown layer type is a ``LayoutError`` naming it.
    """
    if media_type.endswith(("+gzip", ".tar.gzip")):
        return cast("IO[bytes]", gzip.GzipFile(fileobj=raw, mode="rb"))
    if media_type.endswith(("+zstd", ".tar.zstd")):
        return cast("IO[bytes]", zstandard.ZstdDecompressor().stream_reader(raw))
    if media_type.endswith(".tar"):
        return raw
    raise LayoutError(f"{where}: unsupported layer media type {media_type!r}")


def write_blob(root: Path, data: bytes) -> Digest:
    """Store ``data`` as a sha256 blob of the layout at ``root`` (atomic; kept if present)."""
    digest = Digest.of(data)
    path = blob_path(root, digest)
    if not path.exists():
        atomic_write(path, data)
    return digest


def write_marker(root: Path) -> None:
    """The ``oci-layout`` file that makes ``root`` an image layout."""
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))


def index_entry(descriptor: Descriptor, ref_name: str | None) -> Descriptor:
    """``descriptor`` as an ``index.json`` entry: its annotations only the ref name, if any."""
    return descriptor.model_copy(update={"annotations": {REF_NAME: ref_name} if ref_name else None})


def write_index(root: Path, entries: Iterable[Descriptor]) -> bytes:
    """Write the layout's ``index.json`` listing ``entries`` (see ``index_entry``)."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry.to_json() for entry in entries],
    }
    data = canonical_json(document)
    (root / "index.json").write_bytes(data)
    return data


def ref_name(descriptor: Descriptor) -> str | None:
    """The ``org.opencontainers.image.ref.name`` of an ``index.json`` entry."""
    return (descriptor.annotations or {}).get(REF_NAME)


@dataclass(frozen=True)
class ImageLayout:
    """An OCI image layout on disk, its ``index.json`` parsed."""

    path: Path
    index: ImageIndex

    @classmethod
    def open(cls, path: Path) -> ImageLayout:
        """Open the layout at ``path``: its marker and ``index.json``, checked."""
        marker = path / "oci-layout"
        if not marker.is_file():
            raise LayoutError(f"{path} is not an OCI image layout: it has no oci-layout file")
        document = read_json_file(
            marker, max_bytes=4096, what="the oci-layout file", error=LayoutError
        )
        if not isinstance(document, dict):
            raise LayoutError("not a JSON object", location=Location(str(marker)))
        version = document.get("imageLayoutVersion")
        if version != LAYOUT_VERSION:
            raise LayoutError(
                f"imageLayoutVersion is {version!r}; kiln reads {LAYOUT_VERSION}",
                location=Location(str(marker), field="imageLayoutVersion"),
            )
        index_file = path / "index.json"
        if not index_file.is_file():
            raise LayoutError(f"{path} is not an OCI image layout: it has no index.json")
        document = read_json_file(
            index_file, max_bytes=MAX_MANIFEST_BYTES, what="index.json", error=LayoutError
        )
        try:
            index = ImageIndex.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise LayoutError(
                first["msg"],
                location=Location(str(index_file), field=".".join(map(str, first["loc"]))),
            ) from exc
        return cls(path, index)

    def blob(self, digest: Digest) -> Path:
        """The path of a blob that must exist (unverified: for streaming and copying)."""
        found = blob_path(self.path, digest)
        if not found.is_file():
            raise LayoutError(f"{self.path}: blob {digest} is missing from blobs/")
        return found

    def read(self, descriptor: Descriptor, *, max_bytes: int, what: str = "blob") -> bytes:
        """A blob's bytes, verified against ``descriptor`` (``read_blob``)."""
        return read_blob(self.path, descriptor, max_bytes=max_bytes, what=what)

    def config(self, descriptor: Descriptor) -> dict[str, Any]:
        """An image config, verified and parsed as a JSON object."""
        return read_json_blob(self.path, descriptor, what="config")

    def open_blob(self, descriptor: Descriptor) -> IO[bytes]:
        """A stream of a layer, its size checked (``open_blob``)."""
        return open_blob(self.path, descriptor)

    def manifest(self, descriptor: Descriptor) -> Manifest:
        """Read and verify the manifest or index a descriptor points to."""
        data = self.read(descriptor, max_bytes=MAX_MANIFEST_BYTES, what="manifest")
        return parse_manifest(
            data,
            descriptor.media_type,
            descriptor.digest,
            where=f"{self.path}: manifest {descriptor.digest}",
            error=LayoutError,
        )

    def tagged(self, ref: str) -> list[Descriptor]:
        """The ``index.json`` entries named ``ref``."""
        return [d for d in self.index.manifests if ref_name(d) == ref]

    def first_tag(self) -> str | None:
        """The first ref name in ``index.json`` (the image's own tag, as kiln writes it)."""
        for entry in self.index.manifests:
            name = ref_name(entry)
            if name:
                return name
        return None

    def select(self, ref: str | None = None) -> Descriptor:
        """The image: the entry named ``ref``, else the only image in index.json.

        A layout whose index.json lists one image index plus some of that index's own
        platform manifests (kiln's builds name them ``<tag>-<arch>`` for tools that
        cannot pick a platform) holds one image: the index.
        """
        entries = self.index.manifests
        if ref is not None:
            named = self.tagged(ref)
            if len(named) != 1:
                raise LayoutError(
                    f"{self.path}/index.json has {len(named)} manifests named {ref!r}"
                )
            return named[0]
        if len(entries) > 1:
            indexes = [d for d in entries if d.media_type in INDEX_TYPES]
            if len(indexes) == 1:
                parsed = self.manifest(indexes[0]).parsed
                children = (
                    {c.digest for c in parsed.manifests}
                    if isinstance(parsed, ImageIndex)
                    else set()
                )
                if all(d is indexes[0] or d.digest in children for d in entries):
                    return indexes[0]
        if len(entries) != 1:
            names = sorted(ref_name(d) or str(d.digest) for d in entries)
            raise LayoutError(
                f"{self.path}/index.json lists {len(entries)} manifests; say which one",
                hint=f"one of: {', '.join(names) or '(none)'}",
            )
        return entries[0]


def hardlink_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source``, or a copy where links are impossible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
