"""Safe reader for Debian binary packages (.deb), from bytes or a stream, no disk needed.

Implements the format of deb(5): an ``ar`` archive whose first member is
``debian-binary`` (``2.x``), then ``control.tar[.gz|.xz|.zst|.bz2|.lzma]`` and
``data.tar[...]``; members whose name starts with ``_`` are optional additions and are
skipped. Control files follow deb-control(5), deb-conffiles(5) and deb-md5sums(5).

A .deb is remote content (a mirror, or a recipe build that lands in the same
content-addressed cache), so every malformed or hostile input raises
:class:`DebFormatError`, a :class:`~kiln.errors.RemoteContentError`: it is never retried
and it is not the user's input to fix. Refused: bad ``ar`` framing or magic, a wrong or
missing ``debian-binary``, unknown compression, path traversal (``..``, absolute names),
paths under a symlink the package itself ships, hard links to anything but an earlier
regular file of the package, device nodes (unless allowed), duplicate paths, members over
the size limit, decompression past the size or ratio limit, truncation, and trailing bytes
after the last ``ar`` member, after a compressed stream or after the tar end marker.
Symlink targets are kept verbatim, absolute ones included (``/etc/alternatives/...`` is
legal in Debian); whoever lays out a filesystem decides what they may point to.

Everything streams: the ``ar`` payloads are read in chunks, decompressed with bounded
output, and walked with ``tarfile`` in stream mode (``r|``). Only the contents the caller
asks for are kept in memory.

Public entry points: :func:`read_deb` (one verified pass, the safe default),
:func:`iter_data` (streaming), :func:`read_control`, :func:`read_changelog`, and
:func:`source_changelog` (a source package's changelog from one of its binaries).
"""

from __future__ import annotations

import bz2
import email.utils
import enum
import io
import lzma
import os
import re
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import BinaryIO, Protocol

import zstandard
from debian.changelog import Changelog
from debian.deb822 import Deb822

from kiln.debian._ar import ArError, ArMember, ByteSource, MemorySource, StreamSource, iter_ar
from kiln.debian.model import BinaryPackage
from kiln.debian.version import parse_version
from kiln.errors import InputError, Location, RemoteContentError

__all__ = [
    "BIG_DEB",
    "DEFAULT_LIMITS",
    "ChangelogNotFound",
    "Conffile",
    "DebChangelog",
    "DebControl",
    "DebFormatError",
    "DebLimits",
    "DebMember",
    "DebPackage",
    "DebSource",
    "MemberType",
    "SourceChangelog",
    "changelog_paths",
    "iter_data",
    "read_changelog",
    "read_control",
    "read_deb",
    "source_changelog",
]

DebSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO
"""A .deb as bytes, a path, or a readable binary stream (read once, sequentially)."""

MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")

_INPUT_CHUNK = 1 << 16  # compressed bytes read from the ar member at a time
_OUTPUT_CHUNK = 1 << 18  # decompressed bytes produced per step (zlib, xz, bz2)
_ZSTD_PIECE = 1024  # zstd has no output bound: at most 32 KiB out per input byte
_TAR_BUFSIZE = tarfile.RECORDSIZE
_TAR_WINDOW = 4 * _TAR_BUFSIZE  # recent output kept to check what follows the tar end
_DEBIAN_BINARY_MAX = 1024
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ARCHITECTURE = re.compile(r"[a-z0-9][a-z0-9-]*")
_MD5 = re.compile(r"[0-9a-f]{32}")

# What tarfile raises on malformed input (mapped to DebFormatError).
_TAR_ERRORS = (tarfile.TarError, EOFError, ValueError, UnicodeError, OverflowError)
# What the decompressors raise on corrupt input (bz2 raises a bare OSError).
_CODEC_ERRORS = (zlib.error, lzma.LZMAError, zstandard.ZstdError, OSError, EOFError, ValueError)


class DebFormatError(RemoteContentError):
    """A .deb is malformed or hostile; the message names the .deb and the member.

    A ``RemoteContentError`` rather than an ``InputError``: .debs come from the archive
    (sha256-checked against a signed index) or from recipe builds, never typed by the
    user, so a bad one is corruption or an attack and must not be retried.
    """


class MemberType(enum.StrEnum):
    """What a tar member of a .deb is."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


@dataclass(frozen=True)
class DebLimits:
    """Resource bounds for reading one .deb; the defaults fit any package in Debian.

    ``max_ratio`` is decompressed bytes per compressed byte of a member, checked once
    the output exceeds ``ratio_grace`` (tiny, highly compressible members are normal).
    """

    max_member_size: int = 2 << 30  # one file in data.tar
    max_data_size: int = 8 << 30  # all of data.tar, decompressed (headers included)
    max_control_size: int = 64 << 20  # all of control.tar, decompressed
    max_ratio: int = 1000
    ratio_grace: int = 16 << 20
    max_members: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_member_size", "max_data_size", "max_control_size", "max_members"):
            if getattr(self, name) < 1:
                raise InputError(f"DebLimits.{name} must be positive")
        if self.max_ratio < 1 or self.ratio_grace < 0:
            raise InputError("DebLimits.max_ratio must be >= 1 and ratio_grace >= 0")


DEFAULT_LIMITS = DebLimits()


@dataclass(frozen=True)
class DebMember:
    """One entry of a .deb's data (or control) tar, normalised.

    ``path`` is relative POSIX without ``./`` or a trailing ``/`` (``usr/bin/env``);
    the archive root entry ``./`` is not reported. ``mode`` holds the permission bits
    including setuid/setgid/sticky. ``link_target`` is the symlink target verbatim, or
    the normalised path of the earlier member a hard link refers to. Names that are not
    UTF-8 keep their bytes as surrogate escapes (``os.fsencode`` restores them).
    """

    path: str
    type: MemberType
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    size: int  # bytes of content; 0 for everything but regular files
    mtime: int
    link_target: str | None = None
    devmajor: int = 0
    devminor: int = 0

    @property
    def is_file(self) -> bool:
        return self.type is MemberType.FILE


@dataclass(frozen=True)
class Conffile:
    """One line of ``conffiles``: an absolute path and its flags (``remove-on-upgrade``)."""

    path: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class DebControl:
    """The control archive of a .deb, parsed.

    ``fields`` is the ``control`` stanza in file order; :meth:`stanza` returns it as a
    fresh python-debian ``Deb822``. ``files`` holds every control member verbatim
    (control, md5sums, conffiles, triggers, shlibs, symbols, maintainer scripts, ...)
    and ``members`` their metadata, for writing a dpkg database.
    """

    text: str
    fields: Mapping[str, str]
    conffiles: tuple[Conffile, ...]
    md5sums: Mapping[str, str]  # data path (relative, normalised) -> md5 hex
    maintainer_scripts: tuple[str, ...]
    files: Mapping[str, bytes]
    members: tuple[DebMember, ...]

    @property
    def package(self) -> str:
        return self.fields["Package"]

    @property
    def version(self) -> str:
        return self.fields["Version"]

    @property
    def architecture(self) -> str:
        return self.fields["Architecture"]

    def stanza(self) -> Deb822:
        return Deb822(self.text)


@dataclass(frozen=True)
class DebChangelog:
    """A package's Debian changelog: where it was, its text, and its newest entry."""

    path: str
    text: str
    version: str | None  # of the newest entry
    timestamp: int | None  # of the newest entry, seconds since the epoch (UTC)


@dataclass(frozen=True, eq=False)
class DebPackage:
    """A .deb read and verified completely: control, every data member, chosen contents."""

    name: str  # how the .deb is named in messages (file name)
    control: DebControl
    members: tuple[DebMember, ...]
    contents: Mapping[str, bytes]  # path -> bytes for the regular files that were read
    control_compression: str
    data_compression: str
    limits: DebLimits = field(default=DEFAULT_LIMITS, repr=False)  # also for changelogs

    def member(self, path: str) -> DebMember | None:
        """The member at ``path`` (normalised, e.g. ``usr/bin/env``), if the package has one."""
        return self._by_path.get(path)

    @cached_property
    def _by_path(self) -> Mapping[str, DebMember]:
        return MappingProxyType({member.path: member for member in self.members})

    def changelogs(self) -> tuple[DebChangelog, ...]:
        """Every changelog the package ships at a standard path, binNMU one first."""
        found = []
        for path in changelog_paths(self.control.package, self.control.architecture):
            data = self.contents.get(path)
            if data is not None:
                found.append(_parse_changelog(self.name, path, data, self.limits))
        return tuple(found)

    def changelog(self) -> DebChangelog | None:
        """The package's own changelog (``changelog.Debian.gz``, else ``changelog.gz``)."""
        wanted = changelog_paths(self.control.package, self.control.architecture)[-2:]
        for path in wanted:
            data = self.contents.get(path)
            if data is not None:
                return _parse_changelog(self.name, path, data, self.limits)
        return None


def changelog_paths(package: str, architecture: str = "all") -> tuple[str, ...]:
    """Where Debian Policy §12.7 puts a package's changelogs, most specific first.

    A binNMU adds ``changelog.Debian.<arch>.gz``; a non-native package ships
    ``changelog.Debian.gz``; a native one only ``changelog.gz``.
    """
    doc = f"usr/share/doc/{package}"
    paths = [f"{doc}/changelog.Debian.gz", f"{doc}/changelog.gz"]
    if architecture != "all":
        paths.insert(0, f"{doc}/changelog.Debian.{architecture}.gz")
    return tuple(paths)


# --------------------------------------------------------------------------- errors


def _error(deb: str, member: str | None, message: str) -> DebFormatError:
    return DebFormatError(message, location=Location(file=deb, field=member))


# ---------------------------------------------------------------- decompression


class _Inflater(Protocol):
    @property
    def eof(self) -> bool: ...

    def feed(self, data: bytes) -> None: ...

    def pull(self, max_length: int) -> bytes:
        """Output from the input fed so far; empty means more input is needed."""
        ...

    def unused(self) -> bytes:
        """Input left after the end of the compressed stream."""
        ...


class _Identity:
    def __init__(self) -> None:
        self._pending = b""

    @property
    def eof(self) -> bool:
        return False

    def feed(self, data: bytes) -> None:
        self._pending = data

    def pull(self, max_length: int) -> bytes:
        out, self._pending = self._pending, b""
        return out

    def unused(self) -> bytes:
        return b""


class _Zlib:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    def feed(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data

    def pull(self, max_length: int) -> bytes:
        out = self._d.decompress(self._pending, max_length)
        self._pending = self._d.unconsumed_tail
        return out

    def unused(self) -> bytes:
        return self._d.unused_data + self._pending


class _LzmaLike:
    def __init__(self, d: lzma.LZMADecompressor | bz2.BZ2Decompressor) -> None:
        self._d = d
        self._pending = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    def feed(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data

    def pull(self, max_length: int) -> bytes:
        if self._d.eof:
            return b""
        data, self._pending = self._pending, b""
        return self._d.decompress(data, max_length)

    def unused(self) -> bytes:
        return self._d.unused_data + self._pending


class _Zstd:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._pending = memoryview(b"")

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    def feed(self, data: bytes) -> None:
        self._pending = memoryview(bytes(self._pending) + data if self._pending else data)

    def pull(self, max_length: int) -> bytes:
        # zstd's streaming object cannot bound its output, so feed it small pieces.
        while self._pending and not self._d.eof:
            piece, self._pending = self._pending[:_ZSTD_PIECE], self._pending[_ZSTD_PIECE:]
            out: bytes = self._d.decompress(piece)
            if out:
                return out
        return b""

    def unused(self) -> bytes:
        return bytes(self._d.unused_data) + bytes(self._pending)


_CODECS: dict[str, Callable[[], _Inflater]] = {
    "none": _Identity,
    "gz": _Zlib,
    "xz": lambda: _LzmaLike(lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
    "lzma": lambda: _LzmaLike(lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)),
    "bz2": lambda: _LzmaLike(bz2.BZ2Decompressor()),
    "zst": _Zstd,
}


class _Compressed(Protocol):
    @property
    def remaining(self) -> int: ...

    def read(self, n: int) -> bytes: ...


class _BytesPayload:
    """A whole compressed blob as a payload (for gzip'd files inside data.tar)."""

    def __init__(self, data: bytes) -> None:
        self._source = MemorySource(data)
        self._remaining = len(data)

    @property
    def remaining(self) -> int:
        return self._remaining

    def read(self, n: int) -> bytes:
        data = self._source.read(min(n, self._remaining))
        self._remaining -= len(data)
        return data


class _Decompressed(io.RawIOBase):
    """A compressed payload as a readable stream, with size and ratio limits.

    At the end it checks that the compressed stream was complete and that nothing
    followed it. It keeps the last few output chunks so the tar end can be checked.
    """

    def __init__(
        self,
        payload: _Compressed,
        compression: str,
        *,
        deb: str,
        member: str,
        max_size: int,
        limits: DebLimits,
    ) -> None:
        super().__init__()
        self._payload = payload
        self._codec = _CODECS[compression]()
        self._compression = compression
        self._deb = deb
        self._member = member
        self._max_size = max_size
        self._limits = limits
        self._buf = b""
        self._pos = 0
        self._done = False
        self.consumed = 0  # compressed bytes read
        self.produced = 0  # decompressed bytes produced
        self.delivered = 0  # decompressed bytes handed to the reader
        self._window: deque[bytes] = deque()
        self._window_len = 0

    def readable(self) -> bool:
        return True

    def _step(self) -> bytes:
        """The next chunk of output, or b"" at the verified end of the stream."""
        while not self._done:
            try:
                out = self._codec.pull(_OUTPUT_CHUNK)
            except _CODEC_ERRORS as exc:
                raise _error(
                    self._deb, self._member, f"corrupt {self._compression} stream: {exc}"
                ) from exc
            if out:
                self._account(len(out))
                return out
            if self._codec.eof:
                self._finish_stream()
                return b""
            try:
                data = self._payload.read(_INPUT_CHUNK)
            except ArError as exc:
                raise _error(self._deb, exc.member or self._member, exc.message) from exc
            if not data:
                if isinstance(self._codec, _Identity):
                    self._done = True
                    return b""
                raise _error(
                    self._deb,
                    self._member,
                    f"{self._compression} stream is truncated (no end-of-stream marker)",
                )
            self.consumed += len(data)
            self._codec.feed(data)
        return b""

    def _finish_stream(self) -> None:
        self._done = True
        rest = len(self._codec.unused()) + self._payload.remaining
        if rest:
            raise _error(
                self._deb,
                self._member,
                f"{rest} bytes of trailing garbage after the end of the {self._compression} stream",
            )

    def _account(self, n: int) -> None:
        self.produced += n
        if self.produced > self._max_size:
            raise _error(
                self._deb,
                self._member,
                f"decompresses to more than the {self._max_size}-byte limit",
            )
        limits = self._limits
        if self.produced > limits.ratio_grace and self.produced > limits.max_ratio * max(
            self.consumed, 1
        ):
            raise _error(
                self._deb,
                self._member,
                f"compression ratio exceeds {limits.max_ratio}:1 "
                f"({self.consumed} bytes expand past {self.produced}): a decompression bomb?",
            )

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(_OUTPUT_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if self._pos >= len(self._buf):
            self._buf = self._step()
            self._pos = 0
            if not self._buf:
                return b""
        out = self._buf[self._pos : self._pos + size]
        if self._pos == 0 and len(out) == len(self._buf):
            out = self._buf  # hand the chunk over without a copy
        self._pos += len(out)
        self._remember(out)
        return out

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _remember(self, out: bytes) -> None:
        self.delivered += len(out)
        self._window.append(out)
        self._window_len += len(out)
        while self._window and self._window_len - len(self._window[0]) >= _TAR_WINDOW:
            self._window_len -= len(self._window.popleft())

    def tail_from(self, position: int) -> bytes | None:
        """Delivered bytes from ``position`` on, if still in the window."""
        start = self.delivered - self._window_len
        if position < start:
            return None
        return b"".join(self._window)[position - start :]


def _decompress_bounded(
    data: bytes, compression: str, *, deb: str, member: str, limits: DebLimits
) -> bytes:
    stream = _Decompressed(
        _BytesPayload(data),
        compression,
        deb=deb,
        member=member,
        max_size=limits.max_member_size,
        limits=limits,
    )
    return stream.read()


# ------------------------------------------------------------------------ tar


def _normalize(raw: str, *, deb: str, member: str, what: str = "member") -> str:
    """A tar name as a relative POSIX path; "" for the archive root."""
    if "\x00" in raw:
        raise _error(deb, member, f"{what} name {raw!r} contains a NUL byte")
    if raw.startswith("/"):
        raise _error(deb, member, f"{what} {raw!r} is an absolute path")
    path = raw.removeprefix("./")
    if path in ("", ".") or raw == ".":
        return ""
    path = path.removesuffix("/")
    for part in path.split("/"):
        if part == "..":
            raise _error(deb, member, f"{what} {raw!r} escapes the package root ('..')")
        if part in ("", "."):
            raise _error(deb, member, f"{what} {raw!r} is not a normalised path")
    return path


_TYPES: dict[bytes, MemberType] = {
    tarfile.DIRTYPE: MemberType.DIR,
    tarfile.SYMTYPE: MemberType.SYMLINK,
    tarfile.LNKTYPE: MemberType.HARDLINK,
    tarfile.CHRTYPE: MemberType.CHAR,
    tarfile.BLKTYPE: MemberType.BLOCK,
    tarfile.FIFOTYPE: MemberType.FIFO,
}


class _TarWalk:
    """Walk one tar stream, yielding checked members and (when wanted) file contents."""

    def __init__(
        self,
        stream: _Decompressed,
        *,
        deb: str,
        member: str,
        limits: DebLimits,
        allow_devices: bool,
    ) -> None:
        self._stream = stream
        self._deb = deb
        self._member = member
        self._limits = limits
        self._allow_devices = allow_devices
        self._seen: dict[str, MemberType] = {}
        self._parents: set[str] = set()  # every directory implied by a member's path
        self._root_seen = False

    def _fail(self, message: str) -> DebFormatError:
        return _error(self._deb, self._member, message)

    def walk(self, want: Callable[[DebMember], bool]) -> Iterator[tuple[DebMember, bytes | None]]:
        try:
            tar = tarfile.open(  # noqa: SIM115 - a view of our stream, nothing to close
                fileobj=self._stream,
                mode="r|",
                bufsize=_TAR_BUFSIZE,
                encoding="utf-8",
                errors="surrogateescape",
            )
        except DebFormatError:
            raise
        except _TAR_ERRORS as exc:
            raise self._fail(f"not a valid tar archive: {exc}") from exc
        count = 0
        while True:
            try:
                info = tar.next()
            except DebFormatError:
                raise
            except _TAR_ERRORS as exc:
                raise self._fail(f"malformed tar archive: {exc}") from exc
            if info is None:
                break
            count += 1
            if count > self._limits.max_members:
                raise self._fail(f"more than {self._limits.max_members} members")
            checked = self._check(info)
            if checked is None:
                continue
            content = None
            if checked.type is MemberType.FILE and want(checked):
                content = self._read(tar, info, checked.path)
            yield checked, content
        self._check_end(tar)

    def _read(self, tar: tarfile.TarFile, info: tarfile.TarInfo, path: str) -> bytes:
        try:
            handle = tar.extractfile(info)
            data = handle.read() if handle is not None else b""
        except DebFormatError:
            raise
        except _TAR_ERRORS as exc:
            raise self._fail(f"member {path!r}: cannot read content: {exc}") from exc
        if len(data) != info.size:
            raise self._fail(f"member {path!r}: content is truncated")
        return data

    def _check(self, info: tarfile.TarInfo) -> DebMember | None:
        path = _normalize(info.name, deb=self._deb, member=self._member)
        shown = info.name
        if path == "":
            if not info.isdir() or self._root_seen:
                raise self._fail(f"member {shown!r}: archive root must be one directory entry")
            self._root_seen = True
            return None
        if path in self._seen:
            raise self._fail(f"member {shown!r}: duplicate path {path!r}")
        self._check_parents(path, shown)
        if not info.isdir() and path in self._parents:
            raise self._fail(
                f"member {shown!r} is not a directory, but earlier members lie below it"
            )
        link_target: str | None = None
        size = 0
        if info.isreg():
            kind = MemberType.FILE
            size = info.size
            if size > self._limits.max_member_size:
                raise self._fail(
                    f"member {shown!r} is {size} bytes, more than the "
                    f"{self._limits.max_member_size}-byte limit"
                )
        elif info.type in _TYPES:
            kind = _TYPES[info.type]
        else:
            raise self._fail(f"member {shown!r} has unsupported tar type {info.type!r}")
        if kind is MemberType.SYMLINK:
            if not info.linkname or "\x00" in info.linkname:
                raise self._fail(f"symlink {shown!r} has an empty or invalid target")
            link_target = info.linkname
        elif kind is MemberType.HARDLINK:
            link_target = _normalize(
                info.linkname, deb=self._deb, member=self._member, what=f"hard link {shown!r} to"
            )
            target_kind = self._seen.get(link_target)
            if target_kind is not MemberType.FILE:
                raise self._fail(
                    f"hard link {shown!r} points to {info.linkname!r}, which is not an "
                    "earlier regular file of this package"
                )
        elif kind in (MemberType.CHAR, MemberType.BLOCK) and not self._allow_devices:
            raise self._fail(
                f"member {shown!r} is a {kind.value} device node; device nodes are not "
                "allowed in packages"
            )
        if info.uid < 0 or info.gid < 0:
            raise self._fail(f"member {shown!r} has a negative owner {info.uid}:{info.gid}")
        self._seen[path] = kind
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in self._parents:
            self._parents.add(path[:cut])
            cut = path.rfind("/", 0, cut)
        return DebMember(
            path=path,
            type=kind,
            mode=info.mode & 0o7777,
            uid=info.uid,
            gid=info.gid,
            uname=info.uname,
            gname=info.gname,
            size=size,
            mtime=int(info.mtime),
            link_target=link_target,
            devmajor=info.devmajor if kind in (MemberType.CHAR, MemberType.BLOCK) else 0,
            devminor=info.devminor if kind in (MemberType.CHAR, MemberType.BLOCK) else 0,
        )

    def _check_parents(self, path: str, shown: str) -> None:
        # A path below a symlink (or file) of the same package would be written through it.
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            kind = self._seen.get(parent)
            if kind is MemberType.DIR:
                return  # its own parents were checked when it was added
            if kind is not None:
                raise self._fail(
                    f"member {shown!r} lies below {parent!r}, which this package ships "
                    f"as a {kind.value}"
                )
            cut = path.rfind("/", 0, cut)

    def _check_end(self, tar: tarfile.TarFile) -> None:
        """After the last member: one zero block at least, then only zeros to the end."""
        end = tar.offset
        tail = self._stream.tail_from(end)
        if tail is None:  # pragma: no cover - tarfile never reads that far ahead
            raise self._fail("cannot verify the end of the tar archive")
        seen = len(tail)
        bad = tail.count(0) != len(tail)
        while not bad and (chunk := self._stream.read(_OUTPUT_CHUNK)):
            seen += len(chunk)
            bad = chunk.count(0) != len(chunk)
        if bad:
            raise self._fail(
                f"data after the last tar member at offset {end} that is not a tar "
                "header (malformed member or hidden trailing data)"
            )
        if seen < tarfile.BLOCKSIZE:
            raise self._fail("tar archive is truncated (no end-of-archive marker)")
        # Drain to the end of the compressed stream so its checksum and tail are checked.
        while self._stream.read(_OUTPUT_CHUNK):  # pragma: no cover - loop above drained it
            pass


# ------------------------------------------------------------------------- deb


def _deb_name(source: DebSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return os.path.basename(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return "<.deb in memory>"
    stream_name = getattr(source, "name", None)
    if isinstance(stream_name, str):
        return os.path.basename(stream_name)
    return "<.deb stream>"


class _Opened:
    """A ``DebSource`` opened for one sequential pass."""

    def __init__(self, source: DebSource) -> None:
        self._file: BinaryIO | None = None
        self.source: ByteSource
        if isinstance(source, bytes | bytearray | memoryview):
            self.source = MemorySource(source)
        elif isinstance(source, str | os.PathLike):
            try:
                self._file = open(source, "rb")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise InputError(f"cannot open {os.fspath(source)!r}: {exc.strerror}") from exc
            self.source = StreamSource(self._file)
        else:
            self.source = StreamSource(source)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _compression_of(member: str, base: str, deb: str) -> str:
    suffix = member[len(base) :]
    names = {"": "none", ".gz": "gz", ".xz": "xz", ".zst": "zst", ".bz2": "bz2", ".lzma": "lzma"}
    if suffix not in names:
        raise _error(deb, member, f"unknown compression {suffix.lstrip('.')!r} for {base}")
    return names[suffix]


def _check_debian_binary(member: ArMember, deb: str) -> None:
    if member.name != "debian-binary":
        raise _error(
            deb, member.name, f"first ar member is {member.name!r}, expected 'debian-binary'"
        )
    if member.size > _DEBIAN_BINARY_MAX:
        raise _error(deb, member.name, f"debian-binary is {member.size} bytes, far too long")
    text = member.payload.read(member.size)
    first = text.split(b"\n", 1)[0]
    # deb(5): the format version is 2.x; readers must accept higher minors and extra lines.
    if not text.endswith(b"\n") or re.fullmatch(rb"2\.[0-9]+", first) is None:
        raise _error(
            deb,
            member.name,
            f"unsupported format version {text[:16]!r}: this reader knows format 2.x",
        )


@dataclass
class _Pass:
    """State of one sequential pass over a .deb."""

    deb: str
    limits: DebLimits
    allow_devices: bool
    control: DebControl | None = None
    control_compression: str = ""
    data_compression: str = ""


def _walk(
    source: DebSource,
    state: _Pass,
    *,
    want_data: bool,
    want: Callable[[DebMember], bool],
) -> Iterator[tuple[DebMember, bytes | None]]:
    """One pass: checks the ar layout, parses control, streams data when asked."""
    deb = state.deb
    opened = _Opened(source)
    try:
        members = iter_ar(opened.source)
        phase = 0  # 0: want debian-binary, 1: control.tar, 2: data.tar, 3: done
        current: str | None = None
        try:
            for member in members:
                current = member.name
                if phase == 0:
                    _check_debian_binary(member, deb)
                    phase = 1
                elif member.name.startswith("_"):
                    continue  # deb(5): optional members, ignored
                elif phase == 1 and member.name.startswith("control.tar"):
                    state.control_compression = _compression_of(member.name, "control.tar", deb)
                    state.control = _read_control_member(member, state.control_compression, state)
                    phase = 2
                elif phase == 2 and member.name.startswith("data.tar"):
                    state.data_compression = _compression_of(member.name, "data.tar", deb)
                    phase = 3
                    if want_data:
                        stream = _Decompressed(
                            member.payload,
                            state.data_compression,
                            deb=deb,
                            member=member.name,
                            max_size=state.limits.max_data_size,
                            limits=state.limits,
                        )
                        walker = _TarWalk(
                            stream,
                            deb=deb,
                            member=member.name,
                            limits=state.limits,
                            allow_devices=state.allow_devices,
                        )
                        yield from walker.walk(want)
                else:
                    expected = ("control.tar", "data.tar", "no further member")[phase - 1]
                    raise _error(deb, member.name, f"unexpected ar member (expected {expected})")
        except ArError as exc:
            raise _error(deb, exc.member or current, exc.message) from exc
        if phase < 3:
            missing = ("debian-binary", "control.tar", "data.tar")[phase]
            raise _error(deb, None, f"archive has no {missing} member")
    finally:
        opened.close()


def _read_control_member(member: ArMember, compression: str, state: _Pass) -> DebControl:
    deb = state.deb
    stream = _Decompressed(
        member.payload,
        compression,
        deb=deb,
        member=member.name,
        max_size=state.limits.max_control_size,
        limits=state.limits,
    )
    walker = _TarWalk(stream, deb=deb, member=member.name, limits=state.limits, allow_devices=False)
    files: dict[str, bytes] = {}
    infos: list[DebMember] = []
    for entry, content in walker.walk(lambda _m: True):
        if entry.type is not MemberType.FILE or "/" in entry.path:
            raise _error(
                deb, member.name, f"control member {entry.path!r} is not a plain top-level file"
            )
        files[entry.path] = content or b""
        infos.append(entry)
    return _parse_control(files, tuple(infos), deb=deb, member=member.name)


def _decode(data: bytes, *, deb: str, member: str, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(deb, member, f"{what} is not valid UTF-8 (byte {exc.start})") from exc


def _parse_control(
    files: dict[str, bytes], infos: tuple[DebMember, ...], *, deb: str, member: str
) -> DebControl:
    if "control" not in files:
        raise _error(deb, member, "control archive has no 'control' file")
    text = _decode(files["control"], deb=deb, member=member, what="control")
    paragraphs = [p for p in Deb822.iter_paragraphs(text, use_apt_pkg=False) if p]
    if len(paragraphs) != 1:
        raise _error(deb, member, f"control has {len(paragraphs)} stanzas, expected one")
    fields = {key: str(value) for key, value in paragraphs[0].items()}
    for required in ("Package", "Version", "Architecture"):
        if not fields.get(required, "").strip():
            raise _error(deb, member, f"control: required field {required} is missing")
    if _PACKAGE_NAME.fullmatch(fields["Package"]) is None:
        raise _error(deb, member, f"control: Package {fields['Package']!r} is not a valid name")
    if _ARCHITECTURE.fullmatch(fields["Architecture"]) is None:
        raise _error(deb, member, f"control: Architecture {fields['Architecture']!r} is not valid")
    try:
        parse_version(fields["Version"])
    except InputError as exc:
        raise _error(deb, member, f"control: Version: {exc.message}") from exc

    conffiles: list[Conffile] = []
    if "conffiles" in files:
        conf_text = _decode(files["conffiles"], deb=deb, member=member, what="conffiles")
        for number, line in enumerate(conf_text.splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            flags: tuple[str, ...] = ()
            if not entry.startswith("/"):
                flag, _, entry = entry.partition(" ")
                flags, entry = (flag,), entry.strip()
            if not entry.startswith("/"):
                raise _error(
                    deb, member, f"conffiles line {number}: {line!r} is not an absolute path"
                )
            conffiles.append(Conffile(path=entry, flags=flags))

    md5sums: dict[str, str] = {}
    if "md5sums" in files:
        md5_text = _decode(files["md5sums"], deb=deb, member=member, what="md5sums")
        for number, line in enumerate(md5_text.splitlines(), start=1):
            if not line.strip():
                continue
            digest, path = line[:32], line[34:]
            if (
                _MD5.fullmatch(digest.lower()) is None
                or line[32:34] not in ("  ", " *")
                or not path
            ):
                raise _error(deb, member, f"md5sums line {number}: malformed entry {line!r}")
            md5sums[path.removeprefix("./").removeprefix("/")] = digest.lower()

    scripts = tuple(name for name in MAINTAINER_SCRIPTS if name in files)
    return DebControl(
        text=text,
        fields=MappingProxyType(fields),
        conffiles=tuple(conffiles),
        md5sums=MappingProxyType(md5sums),
        maintainer_scripts=scripts,
        files=MappingProxyType(dict(files)),
        members=infos,
    )


def _parse_changelog(deb: str, path: str, data: bytes, limits: DebLimits) -> DebChangelog:
    raw = data
    if path.endswith(".gz"):
        raw = _decompress_bounded(data, "gz", deb=deb, member=path, limits=limits)
    text = raw.decode("utf-8", errors="replace")
    version: str | None = None
    timestamp: int | None = None
    try:
        changelog = Changelog(text, max_blocks=1, strict=False)
        if changelog.version is not None:
            version = str(changelog.version)
        if changelog.date:
            timestamp = int(email.utils.parsedate_to_datetime(changelog.date).timestamp())
    except (ValueError, TypeError, IndexError):
        pass  # an unparsable entry leaves version/timestamp unknown; the text is still useful
    return DebChangelog(path=path, text=text, version=version, timestamp=timestamp)


def _wanted(read_content: bool | Callable[[DebMember], bool]) -> Callable[[DebMember], bool]:
    if callable(read_content):
        return read_content
    return lambda _m: read_content


# ------------------------------------------------------------------- public API


def read_deb(
    source: DebSource,
    *,
    name: str | None = None,
    limits: DebLimits = DEFAULT_LIMITS,
    allow_devices: bool = False,
    read_content: bool | Callable[[DebMember], bool] = True,
) -> DebPackage:
    """Read and verify a whole .deb in one pass; the safe way to use one.

    Returns only after every check passed, including those at the very end (compressed
    stream checksums, trailing data). ``read_content`` selects which regular files'
    bytes are kept (all by default); every member is listed either way. Changelogs at
    the paths of :func:`changelog_paths` are always kept, so :meth:`DebPackage.changelog`
    works whatever was selected.
    """
    deb = _deb_name(source, name)
    state = _Pass(deb=deb, limits=limits, allow_devices=allow_devices)
    members: list[DebMember] = []
    contents: dict[str, bytes] = {}
    want = _wanted(read_content)

    changelogs: frozenset[str] = frozenset()

    def keep(member: DebMember) -> bool:
        # changelogs are always kept: they date the package and list its fixes
        nonlocal changelogs
        if not changelogs and state.control is not None:
            control = state.control
            changelogs = frozenset(changelog_paths(control.package, control.architecture))
        return member.path in changelogs or want(member)

    for member, content in _walk(source, state, want_data=True, want=keep):
        members.append(member)
        if content is not None:
            contents[member.path] = content
    if state.control is None:  # pragma: no cover - _walk raises when control.tar is missing
        raise _error(deb, None, "archive has no control.tar member")
    return DebPackage(
        name=deb,
        control=state.control,
        members=tuple(members),
        contents=MappingProxyType(contents),
        control_compression=state.control_compression,
        data_compression=state.data_compression,
        limits=limits,
    )


def iter_data(
    source: DebSource,
    *,
    name: str | None = None,
    limits: DebLimits = DEFAULT_LIMITS,
    allow_devices: bool = False,
    read_content: bool | Callable[[DebMember], bool] = True,
) -> Iterator[tuple[DebMember, bytes | None]]:
    """Stream the data members of a .deb with the content of each wanted regular file.

    Content is ``None`` for anything but regular files (a hard link's bytes are those of
    its ``link_target``) and for files ``read_content`` declines. Memory stays bounded by
    the largest wanted file. Checks that can only happen at the end (trailing data, the
    compressed stream's checksum) raise when the iterator is exhausted: consume it fully
    before trusting what it yielded, or use :func:`read_deb`.
    """
    state = _Pass(deb=_deb_name(source, name), limits=limits, allow_devices=allow_devices)
    return _walk(source, state, want_data=True, want=_wanted(read_content))


def read_control(
    source: DebSource, *, name: str | None = None, limits: DebLimits = DEFAULT_LIMITS
) -> DebControl:
    """Parse the control archive; the ar layout is checked to the end, data is skipped."""
    state = _Pass(deb=_deb_name(source, name), limits=limits, allow_devices=False)
    for _ in _walk(source, state, want_data=False, want=lambda _m: False):
        pass  # pragma: no cover - no data is walked
    if state.control is None:  # pragma: no cover - _walk raises when control.tar is missing
        raise _error(state.deb, None, "archive has no control.tar member")
    return state.control


def read_changelog(
    source: DebSource,
    *,
    name: str | None = None,
    limits: DebLimits = DEFAULT_LIMITS,
    allow_devices: bool = False,
) -> DebChangelog | None:
    """The package's Debian changelog, or ``None`` if it ships none at a standard path.

    Reads the whole .deb (so it is verified) but keeps only the changelog's bytes.
    """
    package = read_deb(
        source,
        name=name,
        limits=limits,
        allow_devices=allow_devices,
        read_content=lambda _m: False,
    )
    return package.changelog()


# ------------------------------------------------------- a source's changelog, from binaries

BIG_DEB = 1 << 20  # before fetching a binary this big, ask the ``packaging`` callable first


@dataclass(frozen=True)
class SourceChangelog:
    """A source package's changelog as one of its artifacts ships it.

    ``path`` is the member it was read from (``usr/share/doc/<pkg>/changelog.Debian.gz``,
    or ``debian/changelog``); ``binary`` the binary package that ships it, ``None`` when
    it came from the source's packaging tarball.
    """

    text: bytes
    path: str
    binary: BinaryPackage | None


@dataclass(frozen=True)
class ChangelogNotFound:
    """No binary tried ships a changelog; ``tried`` names them in the order read."""

    tried: tuple[str, ...]


def source_changelog(
    binaries: Sequence[BinaryPackage],
    fetch: Callable[[BinaryPackage], DebSource],
    *,
    max_tries: int,
    packaging: Callable[[int], bytes | None] | None = None,
    big: int = BIG_DEB,
) -> SourceChangelog | ChangelogNotFound:
    """The changelog of the source ``binaries`` were built from, read from one of them.

    ``binaries`` are tried in the order given (smallest first, usually), at most
    ``max_tries`` of them, each fetched with ``fetch`` (a verified .deb) and read whole.
    A binary's ``/usr/share/doc/<pkg>/changelog.Debian.gz`` is the source's changelog
    (``changelog.gz`` for a native one; a binNMU's ``changelog.Debian.<arch>.gz`` is not
    it). A binary without one whose ``/usr/share/doc/<pkg>`` is a symlink to another
    binary's doc directory (``libgcc-s1`` -> ``gcc-14-base``) has the binary it points
    to tried next. Before the first binary over ``big`` bytes, ``packaging(size)`` is
    asked once for the changelog of the source's packaging tarball when that is smaller
    than ``size`` (``None``: it is not). Errors of ``fetch`` and ``packaging``
    propagate; a .deb that is not readable is a :class:`DebFormatError` naming it.
    """
    queue = list(binaries)
    tried: list[str] = []
    asked = False
    while queue and len(tried) < max_tries:
        if packaging is not None and not asked and queue[0].size > big:
            asked = True
            text = packaging(queue[0].size)
            if text is not None:
                return SourceChangelog(text, "debian/changelog", None)
        binary = queue.pop(0)
        tried.append(binary.name)
        source = fetch(binary)
        try:
            deb = read_deb(source, name=binary.filename, read_content=False, allow_devices=True)
            found = deb.changelog()
        except DebFormatError as exc:
            raise DebFormatError(f"{binary.filename}: not a readable .deb: {exc.message}") from exc
        if found is not None:
            return SourceChangelog(found.text.encode(), found.path, binary)
        # /usr/share/doc/<pkg> may point at another binary's: try that one next
        doc = deb.member(f"usr/share/doc/{binary.name}")
        target = PurePosixPath(doc.link_target).name if doc and doc.link_target else ""
        queue.sort(key=lambda p: p.name != target)
    return ChangelogNotFound(tuple(tried))
