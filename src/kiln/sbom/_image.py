"""Read the files an SBOM needs from one platform of an OCI image layout, digests verified.

Navigation (``index.json`` -> image index -> platform manifest -> config) goes through
``kiln.registry.ImageLayout``, which checks every manifest against its descriptor. Layers
are streamed, hashed against their descriptors, and applied in order in memory per the
image spec's changeset rules (https://github.com/opencontainers/image-spec/blob/v1.1.0/layer.md):
``.wh.<name>`` deletes a lower path, ``.wh..wh..opq`` hides a directory's lower contents.
Only the data of a few metadata paths is kept (dpkg database, ``os-release``, copyright
files, the files kiln generates); symlinks resolve inside the root, as in a chroot.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from kiln.errors import InputError, IntegrityError
from kiln.registry import Descriptor, Digest, ImageIndex, ImageLayout, ImageManifest

DEFAULT_PLATFORM = "linux/amd64"
STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d"
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
IMAGE_JSON = "usr/lib/kiln/image.json"
#: Files kiln's assembler writes itself (see kiln.assemble.steps); listed only in kiln images.
GENERATED_PATHS = (
    "etc/group",
    "etc/nsswitch.conf",
    "etc/passwd",
    "etc/ssl/certs/ca-certificates.crt",
    IMAGE_JSON,
)
MAX_KEPT_BYTES = 64 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
_MAX_HOPS = 40  # Linux ELOOP limit, path_resolution(7)
_CHUNK = 1024 * 1024
_NESTING = 4


def is_kept(path: str) -> bool:
    """Whether the SBOM reader keeps this root-relative file's bytes."""
    parent, _, name = path.rpartition("/")
    if parent == STATUS_D:
        return not name.endswith((".md5sums", ".list", ".conffiles"))
    if path == STATUS or path in OS_RELEASE_PATHS or path in GENERATED_PATHS:
        return True
    parts = path.split("/")
    return len(parts) == 5 and parts[:3] == ["usr", "share", "doc"] and parts[4] == "copyright"


@dataclass
class _Node:
    kind: str  # file | dir | link | other
    layer: int
    data: bytes | None = None
    target: str = ""
    children: dict[str, _Node] = field(default_factory=dict)


class RootFS:
    """An image's root filesystem in memory: structure of everything, bytes of kept files."""

    def __init__(self) -> None:
        self._root = _Node("dir", -1)

    # -- reading -----------------------------------------------------------------
    def _child(self, node: _Node, part: str) -> _Node | None:
        return node.children.get(part) if node.kind == "dir" else None

    def _resolve(self, path: str) -> _Node | None:
        """The node ``path`` names after following symlinks inside the root."""
        pending = [p for p in path.split("/") if p not in ("", ".")]
        pending.reverse()
        stack: list[_Node] = [self._root]
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            child = self._child(stack[-1], part)
            if child is None:
                return None
            if child.kind == "link":
                hops += 1
                if hops > _MAX_HOPS:
                    return None
                if child.target.startswith("/"):
                    stack = [self._root]
                pending.extend(reversed(child.target.split("/")))
                continue
            stack.append(child)
        return stack[-1]

    def read(self, path: str) -> bytes | None:
        """Bytes of a kept regular file (symlinks followed inside the root), else None."""
        node = self._resolve(path)
        return node.data if node is not None and node.kind == "file" else None

    def exists(self, path: str) -> bool:
        return self._resolve(path) is not None

    def listdir(self, path: str) -> list[str]:
        node = self._resolve(path)
        return sorted(node.children) if node is not None and node.kind == "dir" else []

    # -- building ----------------------------------------------------------------
    def _parent(self, parts: list[str], layer: int) -> _Node:
        node = self._root
        for depth, part in enumerate(parts[:-1]):
            child = node.children.get(part)
            if child is not None and child.kind == "link":
                target = self._resolve("/".join(parts[: depth + 1]))
                if target is not None and target.kind == "dir":
                    node = target  # lib -> usr/lib in merged-/usr images
                    continue
            if child is None or child.kind != "dir":
                child = _Node("dir", layer)
                node.children[part] = child
            node = child
        return node

    @staticmethod
    def _drop_lower(top: _Node, layer: int) -> None:
        stack = [top]
        while stack:
            node = stack.pop()
            for name in list(node.children):
                child = node.children[name]
                if child.layer < layer:
                    del node.children[name]
                elif child.kind == "dir":
                    stack.append(child)

    def apply_layer(self, tar: tarfile.TarFile, layer: int, label: str) -> None:
        for member in tar:
            parts = _parts(member.name)
            if parts is None:
                raise InputError(f"{label}: member {member.name!r} escapes the root filesystem")
            if not parts:
                continue
            parent = self._parent(parts, layer)
            name = parts[-1]
            if name == ".wh..wh..opq":
                self._drop_lower(parent, layer)
                continue
            if name.startswith(".wh."):
                parent.children.pop(name[4:], None)
                continue
            if member.isdir():
                existing = parent.children.get(name)
                if existing is not None and existing.kind == "dir":
                    existing.layer = layer
                else:
                    parent.children[name] = _Node("dir", layer)
            elif member.issym():
                parent.children[name] = _Node("link", layer, target=member.linkname)
            elif member.islnk():
                link = _parts(member.linkname)
                source = self._resolve("/".join(link)) if link else None
                data = source.data if source is not None and source.kind == "file" else None
                parent.children[name] = _Node("file", layer, data=data)
            elif member.isreg():
                data = None
                if is_kept("/".join(parts)):
                    if member.size > MAX_KEPT_BYTES:
                        raise InputError(
                            f"{label}: {member.name}: {member.size} bytes is too large"
                        )
                    handle = tar.extractfile(member)
                    data = None if handle is None else handle.read()
                parent.children[name] = _Node("file", layer, data=data)
            else:
                parent.children[name] = _Node("other", layer)


def _parts(name: str) -> list[str] | None:
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return parts


@dataclass(frozen=True)
class ImageFiles:
    """One platform of a layout: its descriptors, annotations, config and root filesystem."""

    layout: Path
    index_digest: str
    manifest_digest: str
    platform: str
    annotations: dict[str, str]  # index annotations overlaid by the manifest's
    ref_name: str | None
    config: dict[str, Any]
    rootfs: RootFS


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: IO[bytes], algorithm: str) -> None:
        super().__init__()
        self._raw = raw
        self.hash = hashlib.new(algorithm)
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self.hash.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)


def _tar_stream(stream: _HashingReader) -> IO[bytes]:
    buffered = io.BufferedReader(stream, buffer_size=_CHUNK)
    head = buffered.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head == b"\x28\xb5\x2f\xfd":
        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
            buffered, read_across_frames=True
        )
        return reader
    return buffered


def _platform_text(descriptor: Descriptor) -> str:
    plat = descriptor.platform
    if plat is None:
        return "unknown"
    base = f"{plat.os}/{plat.architecture}"
    return f"{base}/{plat.variant}" if plat.variant else base


def _wanted(platform: str) -> tuple[str, ...]:
    parts = tuple(platform.split("/"))
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError(f"platform {platform!r} is not os/arch or os/arch/variant")
    return parts


def _choose(index: ImageIndex, platform: str | None, where: str) -> Descriptor:
    candidates = [
        d
        for d in index.manifests
        if d.platform is None or d.platform.os != "unknown"  # skip buildx attestations
    ]
    if not candidates:
        raise InputError(f"{where}: the index lists no image manifests")
    if platform is None and len(candidates) == 1:
        return candidates[0]
    wanted = _wanted(platform or DEFAULT_PLATFORM)
    for d in candidates:
        p = d.platform
        if (
            p is not None
            and (p.os, p.architecture) == wanted[:2]
            and (len(wanted) == 2 or p.variant == wanted[2])
        ):
            return d
    available = ", ".join(sorted(_platform_text(d) for d in candidates))
    raise InputError(
        f"{where}: no image for platform {'/'.join(wanted)}",
        hint=f"available: {available}; pass --platform",
    )


def _read_config(layout: ImageLayout, descriptor: Descriptor) -> dict[str, Any]:
    if descriptor.size > MAX_CONFIG_BYTES:
        raise InputError(f"{layout.path}: config {descriptor.digest} is too large")
    data = layout.blob(descriptor.digest).read_bytes()
    if Digest.of(data, descriptor.digest.algorithm) != descriptor.digest:
        raise IntegrityError(f"{layout.path}: config {descriptor.digest} does not match its digest")
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{layout.path}: config {descriptor.digest} is not JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InputError(f"{layout.path}: config {descriptor.digest} is not a JSON object")
    return config


_LAYER_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    zstandard.ZstdError,
)


def _apply(layout: ImageLayout, descriptor: Descriptor, number: int, rootfs: RootFS) -> None:
    label = f"{layout.path}: layer {descriptor.digest}"
    with layout.blob(descriptor.digest).open("rb") as raw:
        hashing = _HashingReader(raw, descriptor.digest.algorithm)
        try:
            with tarfile.open(fileobj=_tar_stream(hashing), mode="r|") as tar:
                rootfs.apply_layer(tar, number, label)
            while hashing.read(_CHUNK):
                pass
        except _LAYER_ERRORS as exc:
            while hashing.read(_CHUNK):
                pass
            if hashing.hash.hexdigest() != descriptor.digest.encoded:
                raise IntegrityError(f"{label} does not match its digest") from exc
            raise InputError(f"{label} is not a readable tar: {exc}") from exc
    if hashing.hash.hexdigest() != descriptor.digest.encoded or hashing.size != descriptor.size:
        raise IntegrityError(
            f"{label} does not match its descriptor (got "
            f"{descriptor.digest.algorithm}:{hashing.hash.hexdigest()}, {hashing.size} bytes)"
        )


def _manifests(
    layout: ImageLayout, top: Descriptor, platform: str | None
) -> Iterator[tuple[Descriptor, ImageIndex | ImageManifest, dict[str, str]]]:
    descriptor = top
    annotations: dict[str, str] = {}
    for _ in range(_NESTING):
        manifest = layout.manifest(descriptor)
        parsed = manifest.parsed
        annotations.update(parsed.annotations or {})
        yield descriptor, parsed, dict(annotations)
        if isinstance(parsed, ImageManifest):
            return
        descriptor = _choose(parsed, platform, f"{layout.path}: index {descriptor.digest}")
    raise InputError(f"{layout.path}: image indexes nest deeper than {_NESTING} levels")


def read_image_files(path: Path, platform: str | None = None) -> ImageFiles:
    """Verify and read one platform of the OCI image layout at ``path``."""
    layout = ImageLayout.open(path)
    top = layout.select()
    chain = list(_manifests(layout, top, platform))
    descriptor, manifest, annotations = chain[-1]
    if not isinstance(manifest, ImageManifest):  # _manifests ends on one or raises
        raise InputError(f"{layout.path}: no image manifest found")
    config = _read_config(layout, manifest.config)
    rootfs = RootFS()
    for number, layer in enumerate(manifest.layers):
        _apply(layout, layer, number, rootfs)
    arch = str(config.get("architecture") or "")
    os_name = str(config.get("os") or "")
    if not arch or not os_name:
        raise InputError(f"{layout.path}: config {manifest.config.digest} names no os/architecture")
    variant = config.get("variant")
    plat = f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"
    ref_name = (top.annotations or {}).get("org.opencontainers.image.ref.name")
    return ImageFiles(
        layout=path,
        index_digest=str(top.digest),
        manifest_digest=str(descriptor.digest),
        platform=plat,
        annotations=annotations,
        ref_name=ref_name,
        config=config,
        rootfs=rootfs,
    )
