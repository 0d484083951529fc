"""Read an npm package tarball (``.tgz``) safely, in memory, into assembly's members.

The layout is npm's (https://docs.npmjs.com/cli/v10/commands/npm-pack): a gzipped tar
whose members sit under one top directory (``package/``), stripped on install as
pacote does (``strip: 1``). Nothing is extracted to disk. Refused with an error naming
the tarball and the member: absolute names, ``..`` components, NUL bytes, symbolic
links leading out of the package, hard links, device nodes and fifos, and archives
larger than the bounds below (a decompression bomb). ``package.json`` must name the
package and version that were locked.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib

from kiln.assemble.model import DataMember
from kiln.errors import RemoteContentError
from kiln.jsonlimits import parse_json

MAX_UNPACKED_BYTES = 1024**3
MAX_MEMBERS = 200_000


def _where(source: str, name: str) -> str:
    return f"{source}: member {name!r}"


def _package_path(name: str, source: str) -> str | None:
    """The member's path inside the package (top directory stripped); None for the top."""
    if "\x00" in name:
        raise RemoteContentError(f"{_where(source, name)} has a NUL byte in its name")
    if name.startswith("/"):
        raise RemoteContentError(f"{_where(source, name)} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RemoteContentError(f"{_where(source, name)} leaves the package ('..')")
    if len(parts) < 2:
        return None  # the top directory itself, or a file beside it (npm skips both)
    return "/".join(parts[1:])


def _check_link(path: str, target: str, source: str, name: str) -> None:
    if not target or "\x00" in target:
        raise RemoteContentError(f"{_where(source, name)} is a symlink with an invalid target")
    if target.startswith("/"):
        raise RemoteContentError(
            f"{_where(source, name)} is a symlink to the absolute path {target!r}"
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise RemoteContentError(
            f"{_where(source, name)} is a symlink to {target!r}, which leads out of the package"
        )


def read_npm_tarball(
    data: bytes, *, name: str, version: str, source: str
) -> tuple[DataMember, ...]:
    """The package's members (paths relative to its install directory), checked.

    ``source`` names the tarball in messages (e.g. ``npm@10.9.2``). Modes keep only the
    permission bits; owners are dropped (assembly owns everything by root).
    """
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise RemoteContentError(f"{source}: not a gzipped tar archive: {exc}") from exc
    members: dict[str, DataMember] = {}
    total = 0
    try:
        with archive:
            for count, info in enumerate(archive, start=1):
                if count > MAX_MEMBERS:
                    raise RemoteContentError(f"{source}: more than {MAX_MEMBERS} members")
                path = _package_path(info.name, source)
                if path is None:
                    continue
                mode = info.mode & 0o777
                if info.isreg():
                    total += info.size
                    if total > MAX_UNPACKED_BYTES:
                        raise RemoteContentError(
                            f"{source}: unpacks to more than {MAX_UNPACKED_BYTES} bytes"
                        )
                    handle = archive.extractfile(info)
                    content = handle.read() if handle is not None else b""
                    if len(content) != info.size:
                        raise RemoteContentError(f"{_where(source, info.name)} is truncated")
                    members[path] = DataMember(
                        path, "file", mode, size=len(content), content=content
                    )
                elif info.isdir():
                    members[path] = DataMember(path, "dir", mode)
                elif info.issym():
                    _check_link(path, info.linkname, source, info.name)
                    members[path] = DataMember(path, "symlink", 0o777, link_target=info.linkname)
                elif info.islnk():
                    raise RemoteContentError(
                        f"{_where(source, info.name)} is a hard link; npm packages carry none"
                    )
                else:
                    raise RemoteContentError(
                        f"{_where(source, info.name)} is a device node, fifo or other special "
                        "file; npm packages carry none"
                    )
    except (tarfile.TarError, OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise RemoteContentError(f"{source}: corrupt tar archive: {exc}") from exc
    _check_manifest(members.get("package.json"), name=name, version=version, source=source)
    return tuple(members[p] for p in sorted(members))


def _check_manifest(member: DataMember | None, *, name: str, version: str, source: str) -> None:
    if member is None or member.kind != "file" or not isinstance(member.content, bytes):
        raise RemoteContentError(f"{source}: the tarball has no package.json")
    manifest = parse_json(
        member.content,
        where=f"{source}: package/package.json",
        max_bytes=len(member.content),
        what="package.json",
        error=RemoteContentError,
    )
    if not isinstance(manifest, dict):
        raise RemoteContentError(f"{source}: package.json is not a JSON object")
    found = (manifest.get("name"), manifest.get("version"))
    if found != (name, version):
        raise RemoteContentError(
            f"{source}: package.json names {found[0]}@{found[1]}, not the locked {name}@{version}"
        )
