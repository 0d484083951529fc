"""Remembered test and scan outcomes of catalog images: a rerun with nothing changed
reuses them instead of unpacking, testing and scanning every image again.

A **test outcome** (ELF closure and the image's own tests) is keyed by:

- the image: its index digest and the platform tested (the tests are part of the image:
  ``/usr/lib/kiln/image.json``);
- whether the tests that need the network ran;
- the signed indexes of the archive the image resolves against (each suite's InRelease
  sha256): a ``-dev`` image's ``apt-get install`` test reads the live archive, so a new
  Release is a change;
- a digest of kiln's whole source (any change to the sandbox, the closure check or the
  runner is a miss; hashing it takes a few milliseconds once per process).

Only passing outcomes are kept: a failure runs again next time (it may have been a
flake, and a fix must be seen). ``kiln catalog build --retest`` ignores the entries.

A **scan outcome** is keyed by the image, the vulnerability database file (path, size,
modification time: ``kiln db update`` rewrites it) and the source digest; a database
that is not a local SQLite file is never cached (its changes cannot be seen).

Entries are ``$KILN_CACHE/outcomes/<key>.json``, written atomically; an entry that does
not read as a JSON object is a miss (and is overwritten by the next outcome).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from kiln.fileio import atomic_write

_DIRECTORY = "outcomes"
_MAX_ENTRY_BYTES = 1 << 20


@lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over every module of kiln (and its version)."""
    # the layout cache's digest of code, over all of kiln; loaded here, not at import
    # (the catalog's workflow module imports this one)
    from kiln.assemble.cache import digest_of_code  # noqa: PLC0415

    return digest_of_code((".",))


def _key(kind: str, facts: Mapping[str, object]) -> str:
    body = json.dumps({"kind": kind, "code": source_digest(), **facts}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def key_of_tests(index_digest: str, arch: str, *, network: bool, releases: Iterable[str]) -> str:
    """The key of one platform's test outcome (``releases``: InRelease sha256s)."""
    return _key(
        "tests",
        {"image": index_digest, "arch": arch, "network": network, "archive": sorted(releases)},
    )


def scan_key(index_digest: str, db_url: str) -> str | None:
    """The key of a scan against ``db_url``, or None when it cannot be cached."""
    if not db_url.startswith("sqlite:///"):
        return None
    path = Path(db_url.removeprefix("sqlite:///"))
    try:
        stat = path.stat()
    except OSError:
        return None
    database = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return _key("scan", {"image": index_digest, "db": database})


class OutcomeCache:
    """``<cache root>/outcomes``: remembered outcomes by key."""

    def __init__(self, cache_root: Path) -> None:
        self.directory = cache_root / _DIRECTORY

    def get(self, key: str) -> dict[str, Any] | None:
        """The remembered outcome, or None (absent, unreadable, damaged)."""
        path = self.directory / f"{key}.json"
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_ENTRY_BYTES + 1)
        except OSError:
            return None
        if len(raw) > _MAX_ENTRY_BYTES:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def put(self, key: str, outcome: Mapping[str, Any]) -> None:
        """Remember an outcome (a full disk only loses the entry: it is a cache)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(self.directory / f"{key}.json", json.dumps(dict(outcome)).encode())
        except OSError:
            pass
