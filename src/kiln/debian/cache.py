"""kiln's on-disk download cache: content-addressed blobs, derived indexes, validators.

Layout under the cache root (``$KILN_CACHE``, default ``~/.cache/kiln``)::

    sha256/<hex>           downloaded files, named by the sha256 of their bytes
    derived/<key>          compact forms computed from verified blobs (see index.py),
                           behind a header with the payload's length and CRC-32
    meta/<key>.json        small records: HTTP validators of the last InRelease fetched

Every file appears by atomic rename of a fully written, fsynced temporary file in the
same directory, so readers (other kiln processes included) never see a partial file. A
blob becomes visible only after its size and sha256 were checked. Everything read back
is checked again; a corrupt entry is removed and reported as missing, so callers fetch
it anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from kiln.errors import EnvironmentProblem, IntegrityError
from kiln.fileio import atomic_write, sha256_file

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_DERIVED_MAGIC = b"kilnder1"
_DERIVED_HEADER = struct.Struct("<8sQI")  # magic, payload length, CRC-32 of the payload


def default_cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """``$KILN_CACHE``, else ``~/.cache/kiln``: the one resolver of kiln's cache root.

    Set but empty means the default (as an unset variable), never the working directory.
    """
    configured = environ.get("KILN_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(environ.get("HOME", str(Path.home()))) / ".cache" / "kiln"


def verify_bytes(data: bytes, *, sha256: str, size: int | None, source: str) -> None:
    """Raise ``IntegrityError`` unless ``data`` has the promised size and sha256."""
    if size is not None and len(data) != size:
        raise IntegrityError(
            f"{source}: size {len(data)} bytes does not match the {size} bytes promised "
            "by the signed index",
            hint="this is corruption or an attack; kiln does not retry it",
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"{source}: sha256 {actual} does not match {sha256} promised by the signed index",
            hint="this is corruption or an attack; kiln does not retry it",
        )


class FetchRecord(BaseModel):
    """HTTP validators and result of the last fetch of a signed Release (cache metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    kind: str  # "InRelease" or "Release" (with a detached signature)
    sha256: str
    signature_sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    checked_at: float  # POSIX time of the last successful check against the mirror


class Cache:
    """The on-disk cache rooted at ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls, environ: Mapping[str, str] = os.environ) -> Cache:
        return cls(default_cache_root(environ))

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # -- content-addressed blobs -------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / "sha256" / sha256

    def find_blob(self, sha256: str, *, size: int | None = None) -> Path | None:
        """The path of a stored, intact blob; a corrupt one is removed (``None``)."""
        path = self.blob_path(sha256)
        try:
            if size is not None and path.stat().st_size != size:
                self._discard(path)
                return None
            digest = sha256_file(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unusable(self.root, exc) from exc
        if digest != sha256:
            self._discard(path)
            return None
        return path

    def read_blob(self, sha256: str, *, size: int | None = None) -> bytes | None:
        """A stored blob's bytes, checked against its name; ``None`` if absent or corrupt."""
        path = self.blob_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unusable(self.root, exc) from exc
        if (size is not None and len(data) != size) or hashlib.sha256(data).hexdigest() != sha256:
            self._discard(path)
            return None
        return data

    def put_blob(self, data: bytes, *, sha256: str, size: int | None, source: str) -> Path:
        """Check ``data`` against the promised digest, then store it (atomically)."""
        verify_bytes(data, sha256=sha256, size=size, source=source)
        path = self.blob_path(sha256)
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise _unusable(self.root, exc) from exc
        return path

    def add_blob(self, data: bytes) -> str:
        """Store bytes that were verified some other way (e.g. by signature); return sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if self.find_blob(digest, size=len(data)) is not None:
            return digest
        try:
            atomic_write(self.blob_path(digest), data)
        except OSError as exc:
            raise _unusable(self.root, exc) from exc
        return digest

    # -- derived forms ----------------------------------------------------------

    def get_derived(self, key: str) -> memoryview | None:
        """A derived payload stored under ``key``; ``None`` if absent or corrupt.

        Derived forms are recomputable from verified blobs, so a CRC-32 (fast) guards
        them against corruption; it is no defence against someone who can write to the
        cache, and nor would a digest be, since the header sits next to the payload.
        """
        path = self._derived_path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unusable(self.root, exc) from exc
        payload = memoryview(data)[_DERIVED_HEADER.size :]
        if len(data) < _DERIVED_HEADER.size:
            self._discard(path)
            return None
        magic, length, crc = _DERIVED_HEADER.unpack_from(data)
        if magic != _DERIVED_MAGIC or length != len(payload) or zlib.crc32(payload) != crc:
            self._discard(path)
            return None
        return payload

    def put_derived(self, key: str, payload: bytes) -> None:
        header = _DERIVED_HEADER.pack(_DERIVED_MAGIC, len(payload), zlib.crc32(payload))
        try:
            atomic_write(self._derived_path(key), header + payload)
        except OSError as exc:
            raise _unusable(self.root, exc) from exc

    def discard_derived(self, key: str) -> None:
        self._discard(self._derived_path(key))

    def _derived_path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"{key!r} is not a cache key")
        return self.root / "derived" / key

    # -- fetch records ----------------------------------------------------------

    def get_record(self, key: str) -> FetchRecord | None:
        path = self._record_path(key)
        try:
            return FetchRecord.model_validate(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (ValueError, ValidationError):
            self._discard(path)
            return None
        except OSError as exc:
            raise _unusable(self.root, exc) from exc

    def put_record(self, key: str, record: FetchRecord) -> None:
        try:
            atomic_write(self._record_path(key), record.model_dump_json().encode())
        except OSError as exc:
            raise _unusable(self.root, exc) from exc

    def _record_path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"{key!r} is not a cache key")
        return self.root / "meta" / f"{key}.json"

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _unusable(root: Path, exc: OSError) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"the cache at {root} is not usable: {exc}",
        hint="check its permissions and free space, or set KILN_CACHE to another directory",
    )
