"""Byte sources and ``ar`` framing underneath the .deb reader (private).

A .deb is a Unix ``ar`` archive (see deb(5) and deb-split(5)): the global magic
``!<arch>\\n``, then members, each a 60-byte header (name 16, mtime 12, uid 6, gid 6,
mode 8, decimal size 10, terminator ``\\x60\\n``) followed by the payload, padded with
``\\n`` to an even offset. dpkg writes plain names padded with spaces; GNU ``ar`` may end
them with ``/``. Symbol tables, GNU long-name tables and BSD ``#1/`` names never occur
in a .deb and are refused.

Everything here reads sequentially from bytes or a binary stream and never needs a
disk; payloads are exposed as bounded readers so a caller can stream them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

AR_MAGIC = b"!<arch>\n"
_HEADER_SIZE = 60
_SKIP_CHUNK = 1 << 20


class ArError(ValueError):
    """The ``ar`` framing is malformed; ``member`` names the member involved, if any."""

    def __init__(self, message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.member = member


class ByteSource(Protocol):
    """Sequential bytes: ``read`` returns fewer than ``n`` bytes only at the end."""

    def read(self, n: int) -> bytes: ...

    def skip(self, n: int) -> int:
        """Advance by up to ``n`` bytes; return how many were skipped (less only at EOF)."""
        ...


class MemorySource:
    """A byte source over an in-memory buffer (no copy until a chunk is read)."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def read(self, n: int) -> bytes:
        start = self._pos
        self._pos = min(len(self._view), start + n)
        return bytes(self._view[start : self._pos])

    def skip(self, n: int) -> int:
        start = self._pos
        self._pos = min(len(self._view), start + n)
        return self._pos - start


class StreamSource:
    """A byte source over a binary stream; seeks forward when the stream allows it."""

    def __init__(self, stream: BinaryIO | io.RawIOBase | io.BufferedIOBase) -> None:
        self._stream = stream
        self._end: int | None = None
        self._pos = 0
        try:
            if stream.seekable():
                self._pos = stream.tell()
                self._end = stream.seek(0, io.SEEK_END)
                stream.seek(self._pos)
        except (OSError, ValueError):
            self._end = None

    def read(self, n: int) -> bytes:
        parts: list[bytes] = []
        want = n
        while want > 0:
            chunk = self._stream.read(want)
            if not chunk:
                break
            parts.append(bytes(chunk))
            want -= len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(data)
        return data

    def skip(self, n: int) -> int:
        if self._end is not None:
            target = min(self._end, self._pos + n)
            self._stream.seek(target)
            skipped = target - self._pos
            self._pos = target
            return skipped
        skipped = 0
        while skipped < n:
            chunk = self.read(min(_SKIP_CHUNK, n - skipped))
            if not chunk:
                break
            skipped += len(chunk)
        return skipped


class MemberPayload:
    """The payload of one ``ar`` member: a bounded reader that detects truncation."""

    def __init__(self, source: ByteSource, size: int, member: str) -> None:
        self._source = source
        self._remaining = size
        self._member = member

    @property
    def remaining(self) -> int:
        return self._remaining

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; empty only when the member is exhausted."""
        want = min(n, self._remaining)
        if want <= 0:
            return b""
        data = self._source.read(want)
        self._remaining -= len(data)
        if len(data) < want:
            raise ArError(
                f"archive is truncated: member ends {self._remaining} bytes early",
                self._member,
            )
        return data

    def read_all(self, limit: int) -> bytes:
        if self._remaining > limit:
            raise ArError(
                f"member is {self._remaining} bytes, more than the {limit} allowed", self._member
            )
        return self.read(self._remaining)

    def skip_rest(self) -> None:
        want = self._remaining
        if want <= 0:
            return
        skipped = self._source.skip(want)
        self._remaining -= skipped
        if skipped < want:
            raise ArError(
                f"archive is truncated: member ends {self._remaining} bytes early",
                self._member,
            )


@dataclass(frozen=True)
class ArMember:
    """One ``ar`` member header and its streamable payload."""

    name: str
    size: int
    offset: int  # of the payload, from the start of the archive
    payload: MemberPayload


def _parse_header(header: bytes, offset: int) -> tuple[str, int]:
    if header[58:60] != b"`\n":
        raise ArError(
            f"malformed ar member header at offset {offset} (bad terminator); "
            "trailing garbage or a corrupt archive"
        )
    try:
        raw_name = header[0:16].decode("ascii")
        raw_size = header[48:58].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ArError(f"malformed ar member header at offset {offset} (non-ASCII)") from exc
    name = raw_name.rstrip(" ")
    if name in ("/", "//", "/SYM64/") or name.startswith("#1/"):
        raise ArError(
            f"ar member {name!r} at offset {offset} is a symbol table or long-name entry, "
            "which a .deb never contains"
        )
    name = name.removesuffix("/")
    if not name or not name.isprintable() or "/" in name:
        raise ArError(f"malformed ar member name {raw_name!r} at offset {offset}")
    size_text = raw_size.rstrip(" ")
    if not size_text.isdigit() or not size_text.isascii():
        raise ArError(f"malformed size field {raw_size!r} in ar member header", name)
    return name, int(size_text)


def iter_ar(source: ByteSource) -> Iterator[ArMember]:
    """Yield each member in order; its payload is skipped if the caller left it unread.

    Raises ``ArError`` on a bad magic, a malformed or truncated header, bad padding,
    a payload shorter than its header says, or bytes after the last member that do not
    form a header.
    """
    magic = source.read(len(AR_MAGIC))
    if magic != AR_MAGIC:
        raise ArError(f"not an ar archive: starts with {magic[:8]!r}, expected {AR_MAGIC!r}")
    offset = len(AR_MAGIC)
    while True:
        header = source.read(_HEADER_SIZE)
        if not header:
            return
        if len(header) < _HEADER_SIZE:
            raise ArError(
                f"{len(header)} bytes of trailing garbage (or a truncated header) "
                f"at offset {offset}, after the last ar member"
            )
        name, size = _parse_header(header, offset)
        payload = MemberPayload(source, size, name)
        yield ArMember(name=name, size=size, offset=offset + _HEADER_SIZE, payload=payload)
        payload.skip_rest()
        offset += _HEADER_SIZE + size
        if size % 2:
            pad = source.read(1)
            if not pad:
                return  # some writers omit the final pad byte; nothing follows it
            if pad != b"\n":
                raise ArError(f"bad padding byte {pad!r} after the member", name)
            offset += 1
