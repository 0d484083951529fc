"""Reading a Dockerfile (refusing what is not one) and writing the result atomically."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.migrate import MAX_DOCKERFILE_BYTES, Catalog, migrate, read_dockerfile, write_migration
from migrate.conftest import PREFIX


def test_reads_text_exactly(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"\xef\xbb\xbfFROM python:3\r\n# caf\xc3\xa9\n")
    assert read_dockerfile(path) == "\ufeffFROM python:3\r\n# café\n"


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b"FROM a\n\x7fELF\x02\x01\x01\x00\x00", "is a binary file", 2),
        (b"FROM a\nLABEL x=\xff\xfe\n", "is not UTF-8 text (byte 15)", 2),
        (b"#" * (MAX_DOCKERFILE_BYTES + 1), "is larger than", None),
    ],
)
def test_refuses_what_is_not_a_dockerfile(
    tmp_path: Path, content: bytes, message: str, line: int | None
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        read_dockerfile(path)
    assert caught.value.location is not None
    assert caught.value.location.file == str(path)
    assert caught.value.location.line == line


def test_missing_directory_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_dockerfile(tmp_path / "nope")
    with pytest.raises(InputError, match="is a directory"):
        read_dockerfile(tmp_path)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("FROM a\n")
    # unreadable even for root (the tests run as root in CI): a path through a file
    with pytest.raises(InputError, match="cannot read it: Not a directory"):
        read_dockerfile(not_a_dir / "Dockerfile")


def test_write_is_atomic_keeps_mode_and_skips_no_change(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.13-slim\nRUN true\n")
    path.chmod(0o640)
    result = migrate(path.read_text(), catalog, PREFIX, path=str(path))
    assert write_migration(result, path)
    assert path.read_text() == f"FROM {PREFIX}/python:3.13-dev\nRUN true\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile"]  # no temp file left
    again = migrate(path.read_text(), catalog, PREFIX, path=str(path))
    before = path.stat().st_mtime_ns
    assert not write_migration(again, path)
    assert path.stat().st_mtime_ns == before
