"""Staging directories: build next to the destination, swap in whole, clean up after the dead.

The one atomic directory commit in kiln (built layouts, pulled layouts, cache entries).
``commit_directory`` swaps the staging directory and the destination with
``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15 on ext4, xfs, btrfs, tmpfs...): at every
instant the destination is either the old tree or the new one. Where the kernel or the
filesystem does not offer it (ENOSYS, EINVAL, EOPNOTSUPP: e.g. some network and FUSE
filesystems), the fallback is two renames, the old tree out of the way to
``<staging>.old`` and the new one in: between them the destination is briefly absent,
never half-written (a crash exactly there leaves no destination, and the next
``new_staging_dir`` removes both leftovers; build again).

A layout (or cache entry) is written into ``.<name>.tmp-<hex>`` beside its destination
and renamed into place when complete. While a process works in one it holds an
exclusive ``flock`` on ``.<name>.tmp-<hex>.lock``; the kernel drops that lock when the
process dies, however it dies (``kill -9`` included). So a staging directory whose lock
is free belongs to nobody, and the next ``new_staging_dir`` in the same parent removes
it, while one whose lock is held (a build running at the same time, in this process or
another) is left alone. The lock file is created before its directory and removed
after it; a staging directory without one was left by a kiln that predates the locks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
import secrets
import shutil
import threading
from pathlib import Path

from kiln.errors import EnvironmentProblem

_STAGING = re.compile(r"\.(?P<base>.+\.tmp-[0-9a-f]{12})(?P<old>\.old)?")
_LOCK = re.compile(r"\.(?P<base>.+\.tmp-[0-9a-f]{12})\.lock")
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})
_held: dict[Path, int] = {}  # staging directory -> the descriptor holding its lock
_held_guard = threading.Lock()


def _lock_path(staging: Path) -> Path:
    return staging.with_name(staging.name + ".lock")


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not unlinked or replaced)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _take_abandoned(lock: Path) -> int | None:
    """Lock ``lock`` if its owner is gone; the descriptor, or None while someone holds it."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # gone already, or another user's: not ours to remove
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (EWOULDBLOCK), or a filesystem without locks: keep it
        os.close(fd)
        return None
    if not _same_file(fd, lock):
        os.close(fd)
        return None
    return fd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the staging directories (and lock files) in ``parent`` no live process holds."""
    try:
        names = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    removed = []
    present = set(names)
    for name in names:
        lock_match = _LOCK.fullmatch(name)
        staging_match = _STAGING.fullmatch(name)
        if lock_match:
            owner = f".{lock_match['base']}"
            if owner in present or f"{owner}.old" in present:
                continue  # handled with its directory
            fd = _take_abandoned(parent / name)
            if fd is not None:
                (parent / name).unlink(missing_ok=True)
                os.close(fd)
                removed.append(parent / name)
        elif staging_match and (parent / name).is_dir():
            base = parent / f".{staging_match['base']}"
            lock = _lock_path(base)
            if not lock.exists():
                _remove(parent / name)  # from a kiln without staging locks
                removed.append(parent / name)
                continue
            fd = _take_abandoned(lock)
            if fd is None:
                continue  # a live build's
            try:
                _remove(base)
                _remove(base.with_name(base.name + ".old"))
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
            removed.append(parent / name)
    return removed


def new_staging_dir(final: Path) -> Path:
    """A fresh, locked directory next to ``final`` (same filesystem: the swap is a rename).

    Abandoned staging directories in the same parent are removed first. Give the
    directory to ``commit_directory`` or ``discard_staging``, which release its lock.
    """
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(parent)
    while True:
        staging = parent / f".{final.name}.tmp-{secrets.token_hex(6)}"
        lock = _lock_path(staging)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        # a sweeper may have taken it for an orphan in between: then it is unlinked
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                os.close(fd)
                raise
            # no locks here: the lock file marks it live and no sweeper removes it
        if not _same_file(fd, lock):
            os.close(fd)
            continue
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            staging.mkdir()
        except BaseException:
            lock.unlink(missing_ok=True)
            os.close(fd)
            raise
        with _held_guard:
            _held[staging] = fd
        return staging


def release_staging(staging: Path) -> None:
    """Drop the lock of a staging directory that was committed or removed."""
    with _held_guard:
        fd = _held.pop(staging, None)
    if fd is not None:
        _lock_path(staging).unlink(missing_ok=True)
        os.close(fd)


def discard_staging(staging: Path) -> None:
    """Remove a staging directory that will not be committed, and release its lock."""
    shutil.rmtree(staging, ignore_errors=True)
    release_staging(staging)


_RENAME_EXCHANGE = 2


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise EnvironmentProblem(f"cannot swap {a} into {b}: {os.strerror(err)}")


def commit_directory(staging: Path, final: Path) -> None:
    """Put ``staging`` at ``final``; the previous ``final`` stays intact until the swap.

    The previous content leaves through the staging name (still locked), so a crash
    while it is being removed leaves only an abandoned staging directory.
    """
    try:
        if not final.exists():
            staging.rename(final)
        elif _rename_exchange(staging, final):
            shutil.rmtree(staging)  # now holds the previous content
        else:
            old = staging.with_name(staging.name + ".old")
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old)
    finally:
        release_staging(staging)
