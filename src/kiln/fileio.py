"""Whole files on disk: their sha256, and writing one so that it is never seen half-written.

One helper per concept (issue 14): every file digest and every whole-file write in kiln
goes through here. A write lands by rename of a fully written, fsynced temporary file in
the target's directory, then that directory is fsynced, so that after a crash the path
holds either its old content or the new, never a mix (POSIX ``rename(2)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, hex, read in chunks (a .deb or a tarball can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent/old or complete.

    ``mode`` replaces mkstemp's 0600: locks and SBOMs are files users share. A target
    that exists and is not a regular file (``/dev/stdout``, a named pipe) cannot be
    swapped by a rename, so it is written in place.
    """
    if path.exists() and not path.is_file():
        with path.open("wb") as stream:
            stream.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable; a filesystem that cannot fsync one is let be."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
