"""The lock file: canonical bytes, strict parsing, atomic writes, drift reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiln.resolve.lockfile import (
    ArchLock,
    CutEdge,
    Lock,
    LockedPackage,
    LockedRelease,
    LockError,
    diff_locks,
    parse_lock,
    read_lock,
    write_lock,
)

SHA = "a" * 64


def _pkg(name: str, version: str = "1.0-1", suite: str = "trixie") -> LockedPackage:
    return LockedPackage(
        name=name,
        version=version,
        arch="amd64",
        source=name,
        source_version=version,
        filename=f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        size=100,
        sha256=SHA,
        suite=suite,
    )


def _lock(*packages: LockedPackage, spec: str = SHA) -> Lock:
    return Lock(
        image="x",
        distro="debian-13",
        spec_sha256=spec,
        releases=(
            LockedRelease(suite="trixie", codename="trixie", date="d", inrelease_sha256=SHA),
        ),
        variants={
            "runtime": {
                "amd64": ArchLock(
                    packages=packages,
                    cut_edges=(CutEdge(from_package="b", relation="debconf", reason="r"),),
                )
            }
        },
    )


def test_canonical_bytes_ignore_input_order() -> None:
    a = _lock(_pkg("b"), _pkg("a"))
    b = _lock(_pkg("a"), _pkg("b"))
    assert a.to_json() == b.to_json()
    assert a.digest == b.digest
    data = json.loads(a.to_json())
    names = [p["name"] for p in data["variants"]["runtime"]["amd64"]["packages"]]
    assert names == ["a", "b"]
    assert data["variants"]["runtime"]["amd64"]["cut_edges"][0]["from"] == "b"
    assert a.to_json().endswith(b"\n")


def test_round_trip(tmp_path: Path) -> None:
    lock = _lock(_pkg("a"), _pkg("b"))
    path = tmp_path / "x.lock.json"
    assert write_lock(lock, path) is True
    assert write_lock(lock, path) is False  # identical: not rewritten
    assert read_lock(path) == lock
    assert [p.name for p in lock.all_packages()] == ["a", "b"]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.lock.json"
    write_lock(_lock(_pkg("a")), path)
    before = path.read_bytes()

    def boom(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_lock(_lock(_pkg("b")), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.lock.json"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(lock_version=2), "lock_version"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(spec_sha256="zz"), "spec_sha256"),
        (
            lambda d: d["variants"]["runtime"]["amd64"]["packages"][0].update(
                filename="../../etc/passwd"
            ),
            "filename",
        ),
        (
            lambda d: d["variants"]["runtime"]["amd64"]["packages"][0].update(
                filename="http://evil/x.deb"
            ),
            "filename",
        ),
        (lambda d: d["variants"]["runtime"]["amd64"]["packages"][0].update(size=-1), "size"),
    ],
)
def test_tampered_lock_is_refused(mutate: Callable[[Any], object], expected: str) -> None:
    data = json.loads(_lock(_pkg("a")).to_json())
    mutate(data)
    with pytest.raises(LockError) as info:
        parse_lock(json.dumps(data).encode(), Path("x.lock.json"))
    assert expected in str(info.value.location)
    assert "x.lock.json" in str(info.value)


def test_malformed_json_names_position() -> None:
    with pytest.raises(LockError) as info:
        parse_lock(b'{\n  "image": \n', Path("x.lock.json"))
    assert info.value.location is not None
    assert info.value.location.line == 3


def test_missing_lock_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LockError) as info:
        read_lock(tmp_path / "nope.lock.json")
    assert "kiln lock" in info.value.diagnostics()


def test_diff_reports_each_change() -> None:
    old = _lock(_pkg("a"), _pkg("b"), _pkg("c"))
    new = _lock(_pkg("a", "1.0-2", "trixie-security"), _pkg("c"), _pkg("d"), spec="b" * 64)
    changes = diff_locks(old, new)
    assert changes[0].startswith("spec changed")
    assert "runtime/amd64: ~ a 1.0-1 → 1.0-2 (trixie-security)" in changes
    assert "runtime/amd64: - b 1.0-1" in changes
    assert "runtime/amd64: + d 1.0-1 (trixie)" in changes
    assert diff_locks(old, old) == []


def test_diff_ignores_release_resignature() -> None:
    old = _lock(_pkg("a"))
    new = old.model_copy(
        update={
            "releases": (
                LockedRelease(suite="trixie", codename="trixie", date="e", inrelease_sha256=SHA),
            )
        }
    )
    assert diff_locks(old, new) == []
