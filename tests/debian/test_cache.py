"""The on-disk cache: verified blobs, atomic writes, integrity of everything read back."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kiln.debian.cache import Cache, FetchRecord, default_cache_root
from kiln.errors import EnvironmentProblem, IntegrityError
from kiln.fileio import atomic_write

DATA = b"package bytes"
SHA = hashlib.sha256(DATA).hexdigest()


def test_default_root_from_environment() -> None:
    assert default_cache_root({"KILN_CACHE": "/c"}) == Path("/c")
    assert default_cache_root({"HOME": "/home/u"}) == Path("/home/u/.cache/kiln")


def test_blob_is_verified_before_it_becomes_visible(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(IntegrityError, match=r"sha256 .* does not match"):
        cache.put_blob(b"other bytes", sha256=SHA, size=None, source="x.deb")
    with pytest.raises(IntegrityError, match="size 13 bytes does not match the 12"):
        cache.put_blob(DATA, sha256=SHA, size=12, source="x.deb")
    assert not cache.blob_path(SHA).exists()
    assert cache.find_blob(SHA) is None
    path = cache.put_blob(DATA, sha256=SHA, size=len(DATA), source="x.deb")
    assert path == tmp_path / "sha256" / SHA
    assert cache.find_blob(SHA, size=len(DATA)) == path
    assert cache.read_blob(SHA) == DATA
    assert sorted(p.name for p in path.parent.iterdir()) == [SHA]  # no temporary files left


def test_corrupt_blob_is_discarded(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    path = cache.put_blob(DATA, sha256=SHA, size=None, source="x")
    path.write_bytes(b"package bytez")
    assert cache.read_blob(SHA) is None
    assert not path.exists()
    cache.put_blob(DATA, sha256=SHA, size=None, source="x")
    path.write_bytes(b"short")
    assert cache.find_blob(SHA, size=len(DATA)) is None
    assert not path.exists()


def test_derived_payload_is_checked(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put_derived("universe-amd64-1", b"payload")
    derived = cache.get_derived("universe-amd64-1")
    assert derived is not None
    assert bytes(derived) == b"payload"
    path = tmp_path / "derived" / "universe-amd64-1"
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    assert cache.get_derived("universe-amd64-1") is None
    assert not path.exists()
    assert cache.get_derived("missing") is None
    with pytest.raises(ValueError, match="not a cache key"):
        cache.get_derived("../escape")


def test_fetch_record_round_trip_and_garbage(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    record = FetchRecord(
        url="http://m/dists/trixie/InRelease", kind="InRelease", sha256=SHA, etag='"e"',
        checked_at=1.0,
    )  # fmt: skip
    cache.put_record("release-1", record)
    assert cache.get_record("release-1") == record
    (tmp_path / "meta" / "release-1.json").write_text('{"url": 1, "evil": true}')
    assert cache.get_record("release-1") is None


def test_atomic_write_leaves_old_content_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "dir" / "file"
    atomic_write(target, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new content")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["file"]
    atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"


def test_unwritable_cache_is_an_environment_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = Cache(blocker)
    with pytest.raises(EnvironmentProblem, match="is not usable"):
        cache.put_blob(DATA, sha256=SHA, size=None, source="x")
