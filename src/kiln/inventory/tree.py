"""Read-only views of a root filesystem: a directory on disk or image layers in memory.

Both views answer two questions the catalogers ask: which metadata files exist
(``files``), and what a path holds (``read``), resolving symlinks the way the
kernel would inside a chroot: absolute targets and ``..`` never leave the root,
and more than 40 hops is a loop (Linux ``ELOOP``, see path_resolution(7)).
Layers are applied in memory per the OCI image spec's changeset rules
(https://github.com/opencontainers/image-spec/blob/main/layer.md): whiteouts
``.wh.<name>`` delete a lower entry, ``.wh..wh..opq`` hides a directory's lower
contents; only the data of metadata files is kept.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

from kiln.errors import InputError

MAX_SYMLINK_HOPS = 40
MAX_METADATA_BYTES = 64 * 1024 * 1024  # a dpkg status of 10k packages is ~10 MiB

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d"
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
DEBIAN_VERSION = "etc/debian_version"

_WANTED_NAMES = frozenset({"METADATA", "PKG-INFO", "package.json", "package-lock.json"})
# Top-level pseudo filesystems of a live root, and trees that never hold package metadata.
_PRUNED_DIRS = frozenset(
    {
        "proc",
        "sys",
        "dev",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/i18n",
        "usr/share/zoneinfo",
        "usr/share/icons",
        "usr/include",
    }
)


def is_metadata_path(path: str) -> bool:
    """Whether a root-relative path is a file some cataloger reads."""
    parent, _, name = path.rpartition("/")
    if parent == STATUS_D:
        return not name.endswith((".md5sums", ".list", ".conffiles"))
    if name == "status":
        return path == STATUS
    if name == "os-release" or path == DEBIAN_VERSION:
        return True
    if name not in _WANTED_NAMES:
        return name.endswith(".egg-info")
    if name == "METADATA":
        return parent.endswith(".dist-info")
    if name == "PKG-INFO":
        return parent.endswith(".egg-info")
    if name == "package.json":
        return True  # syft and trivy catalog every package.json naming a name and version
    return "node_modules" not in parent.split("/")  # package-lock.json of a project


class SymlinkLoopError(Exception):
    """Internal: path resolution exceeded ``MAX_SYMLINK_HOPS``."""


class FileTree(Protocol):
    """A root filesystem the catalogers can list and read, never leaving the root."""

    warnings: list[str]

    def files(self) -> Iterator[str]:
        """Root-relative paths of metadata files (see ``is_metadata_path``), sorted."""
        ...

    def read(self, path: str) -> bytes | None:
        """Contents of a regular file after resolving symlinks inside the root, or None."""
        ...


# What a lookup of one fully resolved directory entry found.
_FILE, _DIR, _LINK, _OTHER = "file", "dir", "link", "other"
_Lookup = Callable[[str], tuple[str, str] | None]


def resolve_in_root(path: str, lookup: _Lookup) -> str | None:
    """Resolve ``path`` against a root; return the real root-relative path or None.

    ``lookup(real_path)`` returns ``(kind, link_target)`` for an entry or None if it
    does not exist. Raises ``SymlinkLoopError`` after too many hops.
    """
    pending = deque(path.split("/"))
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        found = lookup(candidate)
        if found is None:
            return None
        kind, target = found
        if kind == _LINK:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise SymlinkLoopError(path)
            if target.startswith("/"):
                resolved = []
            pending.extendleft(reversed(target.split("/")))
            continue
        if pending and kind != _DIR:
            return None
        resolved.append(part)
    return "/".join(resolved)


class DirTree:
    """A root filesystem unpacked in a directory on this machine."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self.warnings: list[str] = []

    def _lookup(self, rel: str) -> tuple[str, str] | None:
        full = os.path.join(self.root, rel)
        try:
            st = os.lstat(full)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return (_LINK, os.readlink(full))
        if stat.S_ISDIR(st.st_mode):
            return (_DIR, "")
        if stat.S_ISREG(st.st_mode):
            return (_FILE, "")
        return (_OTHER, "")

    def files(self) -> Iterator[str]:
        found: list[str] = []
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                entries = os.scandir(os.path.join(self.root, rel) if rel else self.root)
            except OSError as exc:
                self.warnings.append(f"{self.root}/{rel}: cannot list directory: {exc.strerror}")
                continue
            with entries:
                for entry in entries:
                    path = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if path not in _PRUNED_DIRS:
                                stack.append(path)
                        elif entry.is_file(follow_symlinks=False) and is_metadata_path(path):
                            found.append(path)
                    except OSError:  # vanished while listing
                        continue
        return iter(sorted(found))

    def read(self, path: str) -> bytes | None:
        try:
            real = resolve_in_root(path, self._lookup)
        except SymlinkLoopError:
            self.warnings.append(f"/{path}: symlink loop, not read")
            return None
        if real is None or self._lookup(real) != (_FILE, ""):
            return None  # fifos and devices would block or never end
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(os.path.join(self.root, real), flags)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            if st.st_size > MAX_METADATA_BYTES:
                self.warnings.append(f"/{path}: {st.st_size} bytes is too large, not read")
                return None
            return handle.read()


@dataclass
class _Node:
    kind: str  # _FILE, _DIR, _LINK or _OTHER
    layer: int
    data: bytes | None = None
    target: str = ""
    children: dict[str, _Node] = field(default_factory=dict)


class LayerTree:
    """A root filesystem assembled in memory from image layers, lowest first.

    The structure of every entry is kept; file bytes only where ``keep(path)`` says so
    (default: what the catalogers read). A scanner is lenient (``strict=False``): a
    member escaping the root or too large to keep is skipped with a warning. The SBOM
    reader is strict: each is an error, since an SBOM must describe the whole image.
    """

    def __init__(
        self, keep: Callable[[str], bool] = is_metadata_path, *, strict: bool = False
    ) -> None:
        self._root = _Node(_DIR, -1)
        self._keep = keep
        self._strict = strict
        self.warnings: list[str] = []

    def _problem(self, text: str) -> None:
        if self._strict:
            raise InputError(text)
        self.warnings.append(text)

    # -- reading ---------------------------------------------------------------
    def _node(self, rel: str) -> _Node | None:
        node = self._root
        for part in rel.split("/"):
            if not part:
                continue
            child = node.children.get(part) if node.kind == _DIR else None
            if child is None:
                return None
            node = child
        return node

    def _lookup(self, rel: str) -> tuple[str, str] | None:
        node = self._node(rel)
        return None if node is None else (node.kind, node.target)

    def _resolved(self, path: str) -> _Node | None:
        try:
            real = resolve_in_root(path, self._lookup)
        except SymlinkLoopError:
            return None
        return None if real is None else self._node(real)

    def exists(self, path: str) -> bool:
        """Whether ``path`` names an entry (symlinks followed inside the root)."""
        return self._resolved(path) is not None

    def listdir(self, path: str) -> list[str]:
        """The sorted names in directory ``path`` (empty when it is no directory)."""
        node = self._resolved(path)
        return sorted(node.children) if node is not None and node.kind == _DIR else []

    def files(self) -> Iterator[str]:
        found: list[str] = []
        stack: list[tuple[str, _Node]] = [("", self._root)]
        while stack:
            rel, node = stack.pop()
            for name, child in node.children.items():
                path = f"{rel}/{name}" if rel else name
                if child.kind == _DIR:
                    if path not in _PRUNED_DIRS:  # same view as DirTree
                        stack.append((path, child))
                elif child.kind == _FILE and is_metadata_path(path):
                    found.append(path)
        return iter(sorted(found))

    def read(self, path: str) -> bytes | None:
        try:
            real = resolve_in_root(path, self._lookup)
        except SymlinkLoopError:
            self.warnings.append(f"/{path}: symlink loop, not read")
            return None
        node = None if real is None else self._node(real)
        if node is None or node.kind != _FILE:
            return None
        if node.data is None:
            self.warnings.append(f"/{path}: resolves to /{real}, which kiln did not keep")
        return node.data

    # -- building --------------------------------------------------------------
    def _parent(self, parts: list[str], layer: int) -> _Node:
        """The directory holding ``parts[-1]``, creating missing parents (tar allows it).

        A symlinked parent directory is followed inside the root, as containerd does
        when it applies a layer (``lib -> usr/lib`` in merged-/usr images).
        """
        node = self._root
        for depth, part in enumerate(parts[:-1]):
            child = node.children.get(part)
            if child is not None and child.kind == _LINK:
                real = resolve_in_root("/".join(parts[: depth + 1]), self._lookup)
                target = None if real is None else self._node(real)
                if target is not None and target.kind == _DIR:
                    node = target
                    continue
            if child is None or child.kind != _DIR:
                child = _Node(_DIR, layer)
                node.children[part] = child
            node = child
        return node

    @staticmethod
    def _drop_lower(top: _Node, layer: int) -> None:
        stack = [top]
        while stack:  # iterative: a hostile layer may nest directories very deep
            node = stack.pop()
            for name in list(node.children):
                child = node.children[name]
                if child.layer < layer:
                    del node.children[name]
                elif child.kind == _DIR:
                    stack.append(child)

    def apply_layer(self, tar: tarfile.TarFile, layer: int, label: str) -> None:
        """Apply one layer's changeset; ``label`` names the layer in warnings."""
        for member in tar:
            parts = _member_parts(member.name)
            if parts is None:
                self._problem(f"{label}: member {member.name!r} escapes the root filesystem")
                continue
            if not parts:
                continue
            name = parts[-1]
            try:
                parent = self._parent(parts, layer)
            except SymlinkLoopError:
                self.warnings.append(f"{label}: {member.name!r} lies under a symlink loop, skipped")
                continue
            if name == ".wh..wh..opq":
                self._drop_lower(parent, layer)
                continue
            if name.startswith(".wh."):
                parent.children.pop(name[4:], None)
                continue
            path = "/".join(parts)
            if member.isdir():
                existing = parent.children.get(name)
                if existing is not None and existing.kind == _DIR:
                    existing.layer = layer  # a re-declared directory keeps lower children
                else:
                    parent.children[name] = _Node(_DIR, layer)
            elif member.issym():
                parent.children[name] = _Node(_LINK, layer, target=member.linkname)
            elif member.islnk():
                parent.children[name] = self._hardlink(member, layer, label)
            elif member.isreg():
                data = None
                if self._keep(path):
                    data = self._read_member(tar, member, label)
                parent.children[name] = _Node(_FILE, layer, data=data)
            else:
                parent.children[name] = _Node(_OTHER, layer)

    def _read_member(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, label: str
    ) -> bytes | None:
        if member.size > MAX_METADATA_BYTES:
            self._problem(f"{label}: {member.name}: {member.size} bytes is too large to read")
            return None
        handle: IO[bytes] | None = tar.extractfile(member)
        return None if handle is None else handle.read()

    def _hardlink(self, member: tarfile.TarInfo, layer: int, label: str) -> _Node:
        parts = _member_parts(member.linkname)
        source = self._node("/".join(parts)) if parts else None
        if source is None or source.kind != _FILE:
            self.warnings.append(
                f"{label}: hard link {member.name!r} -> {member.linkname!r} has no target"
            )
            return _Node(_OTHER, layer)
        return _Node(_FILE, layer, data=source.data)


def _member_parts(name: str) -> list[str] | None:
    """Split a tar member name into root-relative parts; None if it climbs above the root."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue  # also strips a leading "/" of absolute names: the layer's root is "/"
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return parts
