"""Read an OCI image layout and unpack one platform's rootfs, without root privileges.

Our own code, so ``kiln test`` needs neither umoci nor root: files are created owned by
the calling user (no chown), setuid/setgid bits are dropped, device nodes and fifos are
skipped (a rootless process cannot create them; the sandbox mounts its own /dev).
Layers are applied in order with OCI whiteouts (``.wh.<name>`` deletes a lower path,
``.wh..wh..opq`` empties a directory). Hostile layers are refused: absolute or ``..``
member names, writing through a symlink, hard links to anything but a regular file
already unpacked. Spec: image-spec layer.md ("Whiteouts"), image-layout.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import zstandard

from kiln.assemble.model import OCI_PLATFORMS
from kiln.errors import InputError
from kiln.oci.layout import HashingReader, ImageLayout, LayoutError, decompressed, open_blob
from kiln.oci.model import Descriptor, ImageManifest, choose_platform

_NESTING = 4  # index -> (nested index ->) manifest; bounded against cycles
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
MOUNTPOINTS = ("proc", "dev", "tmp")
_MACHINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class ImageConfig:
    """The run-time part of an OCI image config (config.md "config" object)."""

    user: str = ""
    env: tuple[tuple[str, str], ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: object, where: str) -> ImageConfig:
        if not isinstance(doc, dict):
            raise InputError(f"{where}: image config is not a JSON object")
        cfg = doc.get("config") or {}
        if not isinstance(cfg, dict):
            raise InputError(f"{where}: image config 'config' is not an object")
        env = []
        for item in cfg.get("Env") or []:
            key, sep, value = str(item).partition("=")
            if not sep or not key:
                raise InputError(f"{where}: Env entry {item!r} is not KEY=VALUE")
            env.append((key, value))
        return cls(
            user=str(cfg.get("User") or ""),
            env=tuple(env),
            entrypoint=tuple(str(a) for a in cfg.get("Entrypoint") or ()),
            cmd=tuple(str(a) for a in cfg.get("Cmd") or ()),
            workdir=str(cfg.get("WorkingDir") or ""),
            labels={str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
        )


@dataclass(frozen=True)
class ImageRef:
    """One platform's image in a layout: its manifest, config and layers."""

    layout: Path
    arch: str
    manifest_digest: str
    config: ImageConfig
    layers: tuple[Descriptor, ...]


def host_arch() -> str:
    return _MACHINE_ARCH.get(platform.machine(), platform.machine())


def _architecture(descriptor: Descriptor) -> str | None:
    return descriptor.platform.architecture if descriptor.platform is not None else None


def resolve_image(layout: Path, *, tag: str | None = None, arch: str | None = None) -> ImageRef:
    """Find the manifest of ``arch`` (default: this machine's) under ``tag`` in a layout.

    Every document on the way (index, manifest, config) is read verified through
    ``kiln.oci.layout``; a damaged or incomplete layout raises ``LayoutError``.
    """
    image = ImageLayout.open(layout)
    index_path = layout / "index.json"
    candidates = list(image.index.manifests)
    if tag is not None:
        candidates = image.tagged(tag)
        if not candidates:
            raise LayoutError(f"{index_path}: no image tagged {tag!r}")
    if not candidates:
        raise LayoutError(f"{index_path}: lists no image")
    wanted = arch or host_arch()
    oci_arch = OCI_PLATFORMS.get(wanted, (wanted, None))[0]
    descriptor = candidates[0]
    for _ in range(_NESTING):
        parsed = image.manifest(descriptor).parsed
        if isinstance(parsed, ImageManifest):
            break
        where = f"{layout}: index {descriptor.digest}"
        descriptor = choose_platform(parsed, f"linux/{oci_arch}", where)
    else:
        raise LayoutError(f"{layout}: image indexes nest deeper than {_NESTING} levels")
    named = _architecture(descriptor)
    if named is not None and named != oci_arch:  # a single-platform layout names its manifest
        raise InputError(f"{layout}: the image has no linux/{oci_arch} manifest (it has: {named})")
    where = f"{layout}: config {parsed.config.digest}"
    return ImageRef(
        layout=layout,
        arch=wanted,
        manifest_digest=str(descriptor.digest),
        config=ImageConfig.from_json(image.config(parsed.config), where),
        layers=parsed.layers,
    )


# ------------------------------------------------------------------------------ unpack


def _member_path(name: str, where: str) -> list[str]:
    if "\x00" in name or name.startswith("/"):
        raise InputError(f"{where}: member {name!r} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(f"{where}: member {name!r} leaves the root ('..')")
    return parts


def _safe_parent(root: Path, parts: list[str], where: str, name: str) -> Path:
    """The directory that will hold ``parts[-1]``, created as needed, never via a symlink."""
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            current.mkdir(mode=0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise InputError(f"{where}: member {name!r} would be written through a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{where}: member {name!r} is under a non-directory")
    return current


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        _make_writable(path)
        shutil.rmtree(path)
    else:
        path.unlink()


def _make_writable(tree: Path) -> None:
    for dirpath, dirnames, _ in os.walk(tree):
        os.chmod(dirpath, 0o700)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)


def _iter_members(
    stream: IO[bytes], where: str
) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                yield info, tar
    except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
        raise InputError(f"{where}: corrupt layer: {exc}") from exc


@dataclass
class _UnpackState:
    dir_modes: dict[Path, int] = field(default_factory=dict)
    dir_times: dict[Path, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _set_mtime(path: Path, mtime: float) -> None:
    """The layer's modification time, as a container runtime keeps it: Guile's compiled
    ``.go`` files and Python's ``.pyc`` are trusted only against their sources' times, so
    an unpack that leaves "now" on every file makes a runtime recompile (Guile then fails
    in a read-only image) where the real container would not."""
    with contextlib.suppress(OSError, OverflowError, ValueError):
        os.utime(path, ns=(int(mtime * 1e9),) * 2, follow_symlinks=False)


def _apply_layer(root: Path, stream: IO[bytes], where: str, state: _UnpackState) -> None:
    for info, tar in _iter_members(stream, where):
        parts = _member_path(info.name, where)
        if not parts:
            continue
        base = parts[-1]
        parent = _safe_parent(root, parts, where, info.name)
        if base == _OPAQUE:
            for child in list(parent.iterdir()):
                _remove(child)
            continue
        if base.startswith(_WHITEOUT):
            _remove(parent / base[len(_WHITEOUT) :])
            continue
        target = parent / base
        mode = info.mode & 0o1777  # no setuid/setgid
        if info.isdir():
            if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
                _remove(target)
            if not os.path.lexists(target):
                target.mkdir(mode=0o700)
            os.chmod(target, 0o700)  # owner-writable until every layer is applied
            state.dir_modes[target] = mode
            state.dir_times[target] = int(info.mtime)
            continue
        _remove(target)
        if info.isreg():
            source = tar.extractfile(info)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(target, flags, 0o600)
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    shutil.copyfileobj(source, out, 1 << 20)
            os.chmod(target, mode & 0o777)
            _set_mtime(target, info.mtime)
        elif info.issym():
            os.symlink(info.linkname, target)
            _set_mtime(target, info.mtime)
        elif info.islnk():
            link_parts = _member_path(info.linkname, where)
            if not link_parts:
                raise InputError(f"{where}: hard link {info.name!r} points at the root")
            link_parent = _safe_parent(root, link_parts, where, info.linkname)
            source_path = link_parent / link_parts[-1]
            try:
                st = os.lstat(source_path)
            except FileNotFoundError:
                raise InputError(
                    f"{where}: hard link {info.name!r} -> {info.linkname!r}: target not unpacked"
                ) from None
            if not stat.S_ISREG(st.st_mode):
                raise InputError(
                    f"{where}: hard link {info.name!r} -> {info.linkname!r} is not a regular file"
                )
            os.link(source_path, target)
        else:
            state.skipped.append("/" + "/".join(parts))


@dataclass(frozen=True)
class UnpackedImage:
    rootfs: Path
    image: ImageRef
    skipped: tuple[str, ...] = ()


def unpack_image(image: ImageRef, dest: Path) -> UnpackedImage:
    """Unpack ``image``'s layers into ``dest`` (created; must not exist or be empty)."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InputError(f"{dest}: unpack target is not empty")
    state = _UnpackState()
    for index, layer in enumerate(image.layers):
        where = f"{image.layout}: layer #{index} {layer.digest}"
        with open_blob(image.layout, layer) as raw:
            hashing = HashingReader(raw, layer.digest.algorithm)
            stream = decompressed(layer.media_type, cast("IO[bytes]", hashing), where=where)
            try:
                _apply_layer(dest, stream, where, state)
            except InputError:
                hashing.verify(layer, where)  # a damaged blob says so, not "corrupt tar"
                raise
            hashing.verify(layer, where)
    for mount in MOUNTPOINTS:
        path = dest / mount
        if not os.path.lexists(path):
            path.mkdir(mode=0o755)
    for path in sorted(state.dir_modes, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, state.dir_modes[path] | 0o700)
            _set_mtime(path, state.dir_times[path])  # last: writing children moved it
    return UnpackedImage(dest, image, tuple(state.skipped))


def remove_rootfs(path: Path) -> None:
    """Delete an unpacked rootfs even where the image made directories read-only."""
    if path.exists():
        _make_writable(path)
        shutil.rmtree(path)


def read_embedded_facts(rootfs: Path) -> dict[str, object] | None:
    """The image's /usr/lib/kiln/image.json (name, variant, tests), if it has one."""
    path = rootfs / "usr" / "lib" / "kiln" / "image.json"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not a JSON object")
    return doc
