"""The in-memory filesystem plan that image assembly works on (apko's shape).

A ``Plan`` maps normalised paths (no leading ``/`` or ``./``, no trailing ``/``) to frozen
``Entry`` values. Nothing is ever extracted to disk: steps take a plan and return a new
one, layers are written from the final plan. The root directory itself is implicit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from kiln.assemble.model import Content, EntryKind, read_content
from kiln.errors import InputError

#: Owner recorded for entries kiln creates itself (accounts, CA bundle, ...).
KILN = "kiln"
#: Owner of the merged-/usr compatibility symlinks (part of every base layer).
USRMERGE = "kiln:usrmerge"
#: Owner of what -dev images' replayed maintainer scripts made (kiln.assemble.maintscripts).
MAINTSCRIPTS_OWNER = "kiln:maintscripts"

_MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True)
class Entry:
    """One filesystem object in the plan."""

    path: str
    kind: EntryKind
    mode: int  # permission bits 0o7777 (symlinks carry 0o777)
    uid: int = 0
    gid: int = 0
    size: int = 0
    content: Content | None = None
    link_target: str | None = None  # symlink target as written; hardlink: plan path
    package: str = KILN

    def read(self) -> bytes:
        return read_content(self.content)


def normalise_path(raw: str, *, where: str) -> str:
    """Turn an archive or spec path into a plan path, refusing escapes.

    ``./usr/bin/`` and ``/usr/bin`` both become ``usr/bin``; ``..`` components and NUL
    bytes are refused, since a plan path must name something inside the root.
    """
    if "\x00" in raw:
        raise InputError(f"{where}: path {raw!r} contains a NUL byte")
    text = raw
    while text.startswith("./"):
        text = text[2:]
    text = text.lstrip("/") if raw.startswith("/") else text
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(f"{where}: path {raw!r} leaves the image root ('..')")
    return "/".join(parts)


def parents(path: str) -> Iterator[str]:
    """Every proper ancestor of ``path``, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def sort_key(path: str) -> tuple[str, ...]:
    """Order in which entries go into a layer: parents before children, then bytewise."""
    return tuple(path.split("/"))


@dataclass(frozen=True)
class Plan:
    """An immutable filesystem plan; every change returns a new plan."""

    entries: Mapping[str, Entry]

    @classmethod
    def empty(cls) -> Plan:
        return cls(MappingProxyType({}))

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Plan:
        return cls(MappingProxyType({e.path: e for e in entries}))

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def sorted(self) -> list[Entry]:
        return [self.entries[p] for p in sorted(self.entries, key=sort_key)]

    def with_entries(self, *new: Entry) -> Plan:
        """Add or replace entries, creating missing parent directories (0755 root)."""
        merged = dict(self.entries)
        for entry in new:
            for parent in parents(entry.path):
                if parent not in merged:
                    merged[parent] = Entry(parent, "dir", 0o755, package=entry.package)
            merged[entry.path] = entry
        return Plan(MappingProxyType(merged))

    def without(self, paths: Iterable[str]) -> Plan:
        drop = set(paths)
        return Plan(MappingProxyType({p: e for p, e in self.entries.items() if p not in drop}))

    def replacing(self, entries: Iterable[Entry]) -> Plan:
        """Replace existing entries in place (same paths), e.g. to change modes."""
        merged = dict(self.entries)
        for e in entries:
            merged[e.path] = e
        return Plan(MappingProxyType(merged))

    def children(self, directory: str) -> list[Entry]:
        prefix = directory + "/" if directory else ""
        return [
            e
            for p, e in self.entries.items()
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]

    def under(self, directory: str) -> list[Entry]:
        prefix = directory + "/"
        return [e for p, e in self.entries.items() if p.startswith(prefix)]

    def resolve(self, path: str) -> str | None:
        """Follow symlinks in ``path`` as the kernel would inside a chroot at the root.

        Absolute targets restart at the image root and ``..`` never climbs above it, so a
        symlink pointing outside the image resolves to a path inside it (or nothing).
        Returns the final plan path (``""`` for the root) or None if it does not exist or
        loops.
        """
        pending = [p for p in path.split("/") if p not in ("", ".")]
        current: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if current:
                    current.pop()
                continue
            candidate = "/".join([*current, part])
            entry = self.entries.get(candidate)
            if entry is None:
                return None
            if entry.kind == "symlink":
                hops += 1
                if hops > _MAX_SYMLINK_HOPS or entry.link_target is None:
                    return None
                target = entry.link_target
                if target.startswith("/"):
                    current = []
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            if pending and entry.kind != "dir":
                return None
            current.append(part)
        return "/".join(current)

    def read(self, path: str) -> bytes | None:
        """The content of a regular file, following symlinks inside the root only."""
        real = self.resolve(path)
        if real is None or real == "":
            return None
        entry = self.entries[real]
        if entry.kind == "hardlink" and entry.link_target is not None:
            target = self.entries.get(entry.link_target)
            return target.read() if target is not None and target.kind == "file" else entry.read()
        return entry.read() if entry.kind == "file" else None


def file_entry(
    path: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0, package: str = KILN
) -> Entry:
    return Entry(path, "file", mode, uid, gid, len(data), data, package=package)


def dir_entry(
    path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0, package: str = KILN
) -> Entry:
    return Entry(path, "dir", mode, uid, gid, package=package)


def symlink_entry(path: str, target: str, *, package: str = KILN) -> Entry:
    return Entry(path, "symlink", 0o777, link_target=target, package=package)
