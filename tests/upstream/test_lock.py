"""npm pins in the lock: canonical bytes, drift, and locking a spec against a registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.pipeline.lock import lock_npm
from kiln.resolve.lockfile import Lock, LockedNpmPackage, LockError, diff_locks, parse_lock
from kiln.spec import load_spec
from kiln.upstream import NpmIndex, sri_sha512

from .conftest import BASE, FakeRegistry, package_tgz

SPEC = """\
name: demo
packages: [base-files]
npm: [left-pad@1.3.0]
variants:
  dev:
    npm: [npm@10.9.2, left-pad@1.3.0]
"""


def _locked(name: str, version: str) -> LockedNpmPackage:
    return LockedNpmPackage(
        name=name,
        version=version,
        path=f"{name}/-/{name}-{version}.tgz",
        integrity=sri_sha512(name.encode() + version.encode()),
        sha256="a" * 64,
        size=1,
    )


def _lock(**npm: tuple[LockedNpmPackage, ...]) -> Lock:
    return Lock(
        image="demo", distro="debian-13", spec_sha256="b" * 64, releases=(), variants={}, npm=npm
    )


def test_lock_bytes_round_trip_and_sort_npm_entries() -> None:
    lock = _lock(dev=(_locked("npm", "10.9.2"), _locked("corepack", "0.34.7")))
    data = lock.to_json()
    assert data.index(b'"name": "corepack"') < data.index(b'"name": "npm"')
    assert parse_lock(data, Path("x.lock.json")).to_json() == data


def test_a_lock_without_npm_has_no_npm_key() -> None:
    assert b'"npm"' not in _lock().to_json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path", "/abs.tgz"),
        ("path", "a/../b.tgz"),
        ("path", "https://r.test/a.tgz"),
        ("integrity", "sha1-AAAA"),
    ],
)
def test_bad_npm_lock_entries_are_refused(field: str, value: str) -> None:
    data = _lock(dev=(_locked("npm", "10.9.2"),)).to_json().decode()
    good = {"path": "npm/-/npm-10.9.2.tgz", "integrity": _locked("npm", "10.9.2").integrity}[field]
    with pytest.raises(LockError, match=f"npm.dev.0.{field}"):
        parse_lock(data.replace(good, value).encode(), Path("x.lock.json"))


def test_diff_names_npm_changes() -> None:
    old = _lock(dev=(_locked("npm", "10.9.2"),))
    new = _lock(dev=(_locked("npm", "10.9.3"), _locked("corepack", "0.34.7")))
    assert diff_locks(old, new) == [
        "dev/npm: + corepack 0.34.7",
        f"dev/npm: ~ npm 10.9.2 → 10.9.3 ({_locked('npm', '10.9.3').integrity})",
    ]
    assert diff_locks(new, new) == []


def test_lock_npm_locks_each_variant_once_per_package(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    spec = tmp_path / "demo.yaml"
    spec.write_text(SPEC)
    for name, version in (("left-pad", "1.3.0"), ("npm", "10.9.2")):
        registry.publish(name, version, package_tgz(name, version))
    npm = lock_npm(load_spec(spec), NpmIndex(BASE, fetcher=registry, cache_root=tmp_path / "cache"))
    assert [p.name for p in npm["runtime"]] == ["left-pad"]
    assert [p.name for p in npm["dev"]] == ["left-pad", "npm"]
    assert npm["dev"][0] == npm["runtime"][0]
    assert sum(url.endswith("left-pad/1.3.0") for url in registry.requests) == 1


def test_a_spec_without_npm_needs_no_registry(tmp_path: Path) -> None:
    spec = tmp_path / "demo.yaml"
    spec.write_text("name: demo\npackages: [base-files]\n")
    assert lock_npm(load_spec(spec), None) == {}
