"""Where a feed's input comes from: a local file, a directory, a zip, or a URL.

Offline import is first-class (air-gapped users copy files): every input is reduced to a
list of named members that can be opened as binary streams, and to one sha256 digest
that identifies the snapshot built from it. URLs are downloaded through ``kiln.net``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kiln.errors import InputError
from kiln.fileio import sha256_file
from kiln.net import Fetcher

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FeedInput:
    """One feed input: its origin, digest and members (one for a plain file)."""

    origin: str
    digest: str  # sha256:<hex>
    kind: str  # file | dir | zip | bytes
    _path: Path | None = None
    _data: bytes | None = field(default=None, repr=False)

    def members(self) -> list[str]:
        """Member names, sorted: relative paths for a directory or a zip."""
        match self.kind:
            case "file" | "bytes":
                return [self.origin]
            case "dir":
                root = self._local()
                return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
            case "zip":
                with self._zip() as zf:
                    return sorted(n for n in zf.namelist() if not n.endswith("/"))
            case _:
                raise AssertionError(self.kind)

    @contextmanager
    def open(self, member: str | None = None) -> Iterator[BinaryIO]:
        """Open the input (a plain file) or one member (directory or zip)."""
        match self.kind:
            case "file":
                with self._local().open("rb") as fh:
                    yield fh
            case "bytes":
                yield io.BytesIO(self._data or b"")
            case "dir":
                with (self._local() / self._member(member)).open("rb") as fh:
                    yield fh
            case "zip":
                with self._zip() as zf, zf.open(self._member(member)) as fh:
                    yield fh  # type: ignore[misc]
            case _:
                raise AssertionError(self.kind)

    def display(self, member: str | None = None) -> str:
        """How errors name a member: ``<dir>/<member>`` or ``<zip>!<member>``."""
        if member is None or self.kind in ("file", "bytes"):
            return self.origin
        sep = "!" if self.kind == "zip" else "/"
        return f"{self.origin.rstrip('/')}{sep}{member}"

    def _local(self) -> Path:
        if self._path is None:
            raise TypeError(f"{self.origin}: an in-memory input has no local path")
        return self._path

    def _member(self, member: str | None) -> str:
        if member is None:
            raise TypeError(f"{self.origin}: a {self.kind} input is opened member by member")
        return member

    @contextmanager
    def _zip(self) -> Iterator[zipfile.ZipFile]:
        target: Path | io.BytesIO
        target = self._path if self._path is not None else io.BytesIO(self._data or b"")
        try:
            with zipfile.ZipFile(target) as zf:
                yield zf
        except zipfile.BadZipFile as exc:
            raise InputError(f"{self.origin}: not a valid zip archive: {exc}") from exc


def from_path(path: Path) -> FeedInput:
    """A local input. A directory's digest covers every member's path and content."""
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(f"{p.relative_to(path)}\0{sha256_file(p)}\n".encode())
        return FeedInput(str(path), f"sha256:{h.hexdigest()}", "dir", path)
    if not path.is_file():
        raise InputError(f"{path}: no such file or directory", hint="pass --from FILE|DIR|URL")
    kind = "zip" if zipfile.is_zipfile(path) else "file"
    return FeedInput(str(path), f"sha256:{sha256_file(path)}", kind, path)


def from_bytes(origin: str, data: bytes) -> FeedInput:
    """An input already in memory (a download); zips are recognised by content."""
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    kind = "zip" if data[:4] == b"PK\x03\x04" else "bytes"
    return FeedInput(origin, digest, kind, None, data)


def resolve_input(spec: str, *, fetcher: Fetcher | None = None) -> FeedInput:
    """``--from`` value -> input: an http(s) URL is downloaded, anything else is a path."""
    if spec.startswith(("http://", "https://")):
        if fetcher is None:
            raise InputError(f"{spec}: cannot download without a fetcher")
        return from_bytes(spec, fetcher.fetch(spec).body)
    return from_path(Path(spec).expanduser())
