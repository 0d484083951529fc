"""kiln.fileio: the one sha256 of a file and the one atomic write, used by every writer."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.fileio import atomic_write, memory_scratch, sha256_file
from kiln.oci.layout import write_blob
from kiln.sandbox import write_ctrf


def test_sha256_file_reads_past_one_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * 8193  # just over 2 MiB: three reads, the last one short
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_file_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    assert sha256_file(path) == hashlib.sha256(b"").hexdigest()


def _fsynced_kinds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record (kind, inode) of every fsync'd descriptor: 'dir' or 'file'."""
    seen: list[tuple[str, int]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return seen


def _write_ctrf(target: Path) -> Path:
    write_ctrf(target / "report.json", {"results": {}})
    return target / "report.json"


def _write_blob(target: Path) -> Path:
    digest = write_blob(target, b"blob bytes").encoded
    return target / "blobs" / "sha256" / digest


def _atomic_write(target: Path) -> Path:
    atomic_write(target / "sub" / "file", b"content", mode=0o640)
    return target / "sub" / "file"


@pytest.mark.parametrize("writer", [_atomic_write, _write_ctrf, _write_blob])
def test_every_whole_file_write_fsyncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Callable[[Path], Path]
) -> None:
    seen = _fsynced_kinds(monkeypatch)
    written = writer(tmp_path)
    assert ("file", written.stat().st_ino) in seen
    assert ("dir", written.parent.stat().st_ino) in seen  # the rename itself is durable
    assert [p.name for p in written.parent.iterdir()] == [written.name]  # no temp left


def test_atomic_write_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "shared"
    atomic_write(target, b"x", mode=0o640)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    atomic_write(target, b"y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_into_a_pipe_writes_in_place(tmp_path: Path) -> None:
    # `--output /dev/stdout` and named pipes cannot be swapped by a rename
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    # a daemon: were the pipe swapped for a file, the reader would wait forever
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write(fifo, b"report\n")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    reader.join()
    assert received == [b"report\n"]
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_memory_scratch_honours_kiln_scratch_and_sweeps_dead_processes_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_SCRATCH", "disk")
    assert memory_scratch() is None
    monkeypatch.setenv("KILN_SCRATCH", str(tmp_path))
    dead = tmp_path / "kiln-scratch-999999999-abc"  # no such process
    (dead / "rootfs/usr").mkdir(parents=True)
    (dead / "rootfs/usr/file").write_text("x")
    (dead / "rootfs/usr").chmod(0o555)  # an unpacked image's read-only directory
    alive = tmp_path / f"kiln-scratch-{os.getpid()}-old"
    alive.mkdir()
    made = memory_scratch()
    assert made is not None
    assert made.parent == tmp_path
    assert made.name.startswith(f"kiln-scratch-{os.getpid()}-")
    assert not dead.exists()
    assert alive.is_dir()
    monkeypatch.setenv("KILN_SCRATCH", str(tmp_path / "missing"))
    assert memory_scratch() is None
