"""Whole files on disk: their sha256, and writing one so that it is never seen half-written.

One helper per concept (issue 14): every file digest and every whole-file write in kiln
goes through here. A write lands by rename of a fully written, fsynced temporary file in
the target's directory, then that directory is fsynced, so that after a crash the path
holds either its old content or the new, never a mix (POSIX ``rename(2)``).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
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


#: where memory_scratch() looks for a tmpfs; override with KILN_SCRATCH=DIR (or "disk")
MEMORY_SCRATCH = Path("/dev/shm")  # noqa: S108  # mkdtemp: a private 0700 directory


def memory_scratch(min_free: int = 4 << 30) -> Path | None:
    """A private scratch directory in memory (tmpfs), for work that writes and deletes
    many small files (unpacking an image to test it, the root a package's maintainer
    scripts run in), or None to stay on the default temporary directory.

    ``KILN_SCRATCH``: a directory to use instead, or ``disk`` for none. Otherwise
    ``/dev/shm`` when it is writable, allows execution (tests run the image's programs
    from it) and has ``min_free`` bytes free. On this project's 2-core test machine a
    catalog image spent a third of its time creating and unlinking files on disk.
    """
    chosen = os.environ.get("KILN_SCRATCH", "")
    if chosen == "disk":
        return None
    base = Path(chosen) if chosen else MEMORY_SCRATCH
    try:
        stat = os.statvfs(base)
    except OSError:
        return None
    usable = os.access(base, os.W_OK | os.X_OK) and not stat.f_flag & os.ST_NOEXEC
    if not usable or (not chosen and stat.f_bavail * stat.f_frsize < min_free):
        return None
    _sweep_dead_scratch(base)
    made = Path(tempfile.mkdtemp(prefix=f"kiln-scratch-{os.getpid()}-", dir=base))
    atexit.register(_remove_tree, made)
    return made


def _remove_tree(path: Path) -> None:
    """``rmtree`` that also empties directories an unpacked image made read-only."""
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def _sweep_dead_scratch(base: Path) -> None:
    """Remove the scratch directories of kiln processes that no longer run (a killed
    worker's leftovers would hold memory until the next boot)."""
    for path in base.glob("kiln-scratch-*-*"):
        pid = path.name.split("-")[2]
        if not pid.isdigit() or path.is_symlink() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _remove_tree(path)
        except PermissionError:
            continue  # another user's live process
