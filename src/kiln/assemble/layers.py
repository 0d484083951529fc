"""Deterministic layer tarballs from a plan, streamed straight into blob files.

Same plan + same epoch => same bytes: entries in ``sort_key`` order (parents first),
numeric owners with empty user/group names, every mtime = SOURCE_DATE_EPOCH, POSIX
ustar headers with PAX extensions only where a field does not fit, no ``./`` prefix
(Syft rejects it). gzip carries a fixed header (mtime 0, no file name) and is deflated
in parallel, deterministically (``kiln.assemble.pargzip``); zstd frames are
written without a checksum. The layer's diff_id (uncompressed digest) and blob digest
are computed while streaming. OCI image spec: layer.md, image-layout.md.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import zstandard

from kiln.assemble.fs import USRMERGE, Entry, Plan, parents
from kiln.assemble.pargzip import ParallelGzipWriter
from kiln.errors import InputError

Compression = Literal["gzip", "zstd", "none"]
MEDIA_TYPES: dict[Compression, str] = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
GZIP_LEVEL = 6  # level 9 is ~3x slower for <1% smaller layers
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: its blob digest/size, diff_id and where the blob file is."""

    media_type: str
    digest: str  # sha256:<hex> of the stored (compressed) blob
    size: int
    diff_id: str  # sha256:<hex> of the uncompressed tar
    path: Path
    entries: int
    uncompressed_size: int
    reused: bool = False  # restored from the layer cache (kiln.assemble.layercache)


class _HashingSink(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``target``."""

    def __init__(self, target: io.RawIOBase | io.BufferedIOBase | _HashingSink | None) -> None:
        super().__init__()
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        self.sha256.update(view)
        self.size += len(view)
        if self.target is not None:
            self.target.write(view)
        return len(view)


def _tarinfo(entry: Entry, name: str, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = epoch
    return info


def write_tar(
    entries: Iterable[Entry], out: io.RawIOBase, *, epoch: int, lookup: Mapping[str, Entry]
) -> int:
    """Write ``entries`` (already in layer order) as a deterministic tar; return the count.

    Hard links become links to the first member of their group written in this layer;
    a group whose target is absent (pruned, or in another layer) is promoted to a file.
    """
    emitted_group: dict[str, str] = {}
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = _tarinfo(entry, entry.path, epoch)
            data: bytes | None = None
            match entry.kind:
                case "dir":
                    info.type = tarfile.DIRTYPE
                case "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.link_target or ""
                    info.mode = 0o777
                case "file" | "hardlink":
                    group = entry.path if entry.kind == "file" else (entry.link_target or "")
                    if group in emitted_group:
                        info.type = tarfile.LNKTYPE
                        info.linkname = emitted_group[group]
                    else:
                        source = entry if entry.kind == "file" else lookup.get(group, entry)
                        data = source.read()
                        info.type = tarfile.REGTYPE
                        info.size = len(data)
                        emitted_group[group] = entry.path
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
            count += 1
    return count


def _compressor(kind: Compression, sink: _HashingSink) -> io.RawIOBase | io.BufferedIOBase:
    match kind:
        case "gzip":
            # no name and mtime 0 in the header; chunks deflate on every core (pargzip)
            return ParallelGzipWriter(sink, level=GZIP_LEVEL)
        case "zstd":
            cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False)
            writer: io.RawIOBase = cctx.stream_writer(sink, closefd=False)  # type: ignore[arg-type,assignment]
            return writer
        case "none":
            return sink


def write_layer(
    entries: Sequence[Entry],
    blobs_dir: Path,
    *,
    epoch: int,
    compression: Compression = "gzip",
    lookup: Mapping[str, Entry] | None = None,
) -> LayerBlob:
    """Stream a layer into ``blobs_dir/sha256/<digest>`` and describe it."""
    blobs = blobs_dir / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f".partial-{secrets.token_hex(8)}"
    with partial.open("wb") as fh:
        stored = _HashingSink(fh)
        table = lookup if lookup is not None else {e.path: e for e in entries}
        if compression == "none":
            tar_sink = stored
            count = write_tar(entries, tar_sink, epoch=epoch, lookup=table)
        else:
            compressor = _compressor(compression, stored)
            tar_sink = _HashingSink(compressor)
            count = write_tar(entries, tar_sink, epoch=epoch, lookup=table)
            compressor.close()
        fh.flush()
        os.fsync(fh.fileno())
    digest = stored.sha256.hexdigest()
    final = blobs / digest
    partial.replace(final)
    return LayerBlob(
        media_type=MEDIA_TYPES[compression],
        digest=f"sha256:{digest}",
        size=stored.size,
        diff_id=f"sha256:{tar_sink.sha256.hexdigest()}",
        path=final,
        entries=count,
        uncompressed_size=tar_sink.size,
    )


def split_layers(plan: Plan, base_packages: frozenset[str] = frozenset()) -> list[list[Entry]]:
    """Entries per layer, each in layer order: one layer, or a shared base + the rest.

    The base layer holds the base packages' files and symlinks, the merged-/usr links and
    their parent directories, so every image built on the same base packages shares it
    byte for byte. A directory with none of those below it goes to the second layer even
    when a base package ships it: which package a shared directory is attributed to
    depends on the image's other packages (an empty ``usr/share/man/de/man5`` left by
    pruning is a base package's in one image and adduser's in the next).
    """
    ordered = plan.sorted()
    if not base_packages:
        return [ordered]
    in_base = {
        e.path
        for e in ordered
        if (e.package in base_packages and e.kind != "dir") or e.package == USRMERGE
    }
    for path in list(in_base):
        in_base.update(parents(path))
    base = [e for e in ordered if e.path in in_base]
    rest_paths = {e.path for e in ordered if e.path not in in_base}
    needed = set(rest_paths)
    for path in rest_paths:
        needed.update(parents(path))
    rest = [e for e in ordered if e.path in needed]
    if not base:
        raise InputError("layering: none of the base packages is in this image")
    return [base, rest] if rest_paths else [base]
