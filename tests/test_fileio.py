"""kiln.fileio: the one sha256 of a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kiln.fileio import sha256_file


def test_sha256_file_reads_past_one_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * 8193  # just over 2 MiB: three reads, the last one short
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_file_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    assert sha256_file(path) == hashlib.sha256(b"").hexdigest()
