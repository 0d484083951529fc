"""The I/O edges of ``kiln migrate``: read a Dockerfile as text, write the result atomically."""

from __future__ import annotations

import stat
from pathlib import Path

from kiln.errors import InputError, Location
from kiln.fileio import atomic_write
from kiln.migrate._plan import Migration

MAX_DOCKERFILE_BYTES = 1024 * 1024


def read_dockerfile(path: Path) -> str:
    """The file's text, exactly (UTF-8, line endings and BOM kept); refuse binary files."""
    where = Location(str(path))
    try:
        if path.is_dir():
            raise InputError("is a directory, not a Dockerfile", where)
        with path.open("rb") as handle:
            data = handle.read(MAX_DOCKERFILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError("no such file", where) from None
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}", where) from exc
    if len(data) > MAX_DOCKERFILE_BYTES:
        raise InputError(
            f"is larger than {MAX_DOCKERFILE_BYTES} bytes: not a Dockerfile kiln will rewrite",
            where,
        )
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise InputError(
            "is a binary file (it contains NUL bytes), not a Dockerfile", Location(str(path), line)
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"is not UTF-8 text (byte {exc.start}): BuildKit reads Dockerfiles as UTF-8",
            Location(str(path), line),
        ) from exc


def write_migration(migration: Migration, path: Path) -> bool:
    """Write the migrated text over ``path`` atomically, keeping its mode; False if unchanged."""
    if not migration.changed:
        return False
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise InputError(f"cannot stat it: {exc.strerror}", Location(str(path))) from exc
    atomic_write(path, migration.migrated.encode("utf-8"), mode=mode)
    return True
