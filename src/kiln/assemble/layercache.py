"""A cache of compressed layer blobs, keyed by the uncompressed tar they compress.

A shared base layer (``layering: shared``) is the same tar in every image built on the
same versions of its base packages. Writing it is mostly compression, so the tar is
first streamed through sha256 alone (its diff_id, no compression) and, when a blob of
that diff_id with the same compressor is cached, the blob is hard-linked into the
layout instead of being compressed again. The compressor is deterministic (fixed gzip
header, parallel deflate in fixed chunks; zstd without checksums), so the reused blob
is the blob a fresh build would write; the key also carries the compressor's code and
library versions. A reused blob is read back and checked against its digest first (a
damaged entry is rebuilt, never shipped). Entries are committed whole by a rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import zstandard

from kiln.assemble import layers as _layers_module
from kiln.assemble import pargzip as _pargzip_module
from kiln.assemble.fs import Entry
from kiln.assemble.layers import (
    GZIP_LEVEL,
    MEDIA_TYPES,
    ZSTD_LEVEL,
    Compression,
    LayerBlob,
    _HashingSink,
    write_layer,
    write_tar,
)

_BLOB = "blob"
_META = "layer.json"


@lru_cache(maxsize=1)
def _compressor_digest() -> str:
    """The code and libraries that turn a tar into a blob: a change re-keys the cache."""
    digest = hashlib.sha256()
    for module in (_layers_module, _pargzip_module):
        digest.update(Path(str(module.__file__)).read_bytes())
    versions = f"{zlib.ZLIB_RUNTIME_VERSION} {zstandard.__version__} {GZIP_LEVEL} {ZSTD_LEVEL}"
    digest.update(versions.encode())
    return digest.hexdigest()[:16]


def _diff_id(entries: Sequence[Entry], *, epoch: int, lookup: Mapping[str, Entry]) -> str:
    sink = _HashingSink(None)
    write_tar(entries, sink, epoch=epoch, lookup=lookup)
    return sink.sha256.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class LayerCache:
    """Compressed layer blobs under ``root/<compression>-<compressor>-<diff_id>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _entry(self, compression: Compression, diff_id: str) -> Path:
        return self.root / f"{compression}-{_compressor_digest()}-{diff_id}"

    def write(
        self,
        entries: Sequence[Entry],
        blobs_dir: Path,
        *,
        epoch: int,
        compression: Compression = "gzip",
        lookup: Mapping[str, Entry] | None = None,
    ) -> LayerBlob:
        """``write_layer``, reusing a cached blob of the same tar (``reused=True``)."""
        table = lookup if lookup is not None else {e.path: e for e in entries}
        diff_id = _diff_id(entries, epoch=epoch, lookup=table)
        entry = self._entry(compression, diff_id)
        found = self._restore(entry, blobs_dir, compression, diff_id)
        if found is not None:
            return found
        # two builds needing the same new layer at once (the first images of a catalog
        # build): the second waits for the first's blob instead of compressing it too
        with self._locked(entry):
            found = self._restore(entry, blobs_dir, compression, diff_id)
            if found is not None:
                return found
            written = write_layer(
                entries, blobs_dir, epoch=epoch, compression=compression, lookup=table
            )
            if written.diff_id == f"sha256:{diff_id}":
                self._store(entry, written)
        return written

    @contextmanager
    def _locked(self, entry: Path) -> Iterator[None]:
        """An exclusive flock per entry (between processes and threads alike); where the
        cache cannot be locked (read-only, no locks), the build goes on unlocked."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / f".{entry.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError:
            yield
            return
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # the lock file stays: unlinking it would race a waiter

    def _restore(
        self, entry: Path, blobs_dir: Path, compression: Compression, diff_id: str
    ) -> LayerBlob | None:
        try:
            meta = json.loads((entry / _META).read_bytes())
            digest = str(meta["digest"])
            size = int(meta["size"])
            count = int(meta["entries"])
            uncompressed = int(meta["uncompressed_size"])
            blob = entry / _BLOB
            if blob.stat().st_size != size or f"sha256:{_file_sha256(blob)}" != digest:
                return None  # damaged: build it again (and the store replaces nothing)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        target = blobs_dir / "sha256" / digest.split(":", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".partial-{secrets.token_hex(8)}")
        try:
            os.link(blob, partial)
        except OSError:
            shutil.copyfile(blob, partial)
        partial.replace(target)
        return LayerBlob(
            media_type=MEDIA_TYPES[compression],
            digest=digest,
            size=size,
            diff_id=f"sha256:{diff_id}",
            path=target,
            entries=count,
            uncompressed_size=uncompressed,
            reused=True,
        )

    def _store(self, entry: Path, written: LayerBlob) -> None:
        """Keep the blob (best effort: a full disk only loses the cache entry)."""
        if (entry / _META).exists():
            return
        staging = entry.with_name(f".partial-{entry.name}-{secrets.token_hex(8)}")
        try:
            staging.mkdir(parents=True)
            try:
                os.link(written.path, staging / _BLOB)
            except OSError:
                shutil.copyfile(written.path, staging / _BLOB)
            meta = {
                "digest": written.digest,
                "size": written.size,
                "entries": written.entries,
                "uncompressed_size": written.uncompressed_size,
            }
            (staging / _META).write_bytes(json.dumps(meta, sort_keys=True).encode())
            staging.rename(entry)  # another build stored it first: keep theirs
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
