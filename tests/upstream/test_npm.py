from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kiln.errors import EnvironmentProblem, IntegrityError, RemoteContentError
from kiln.net import HttpStatusError
from kiln.upstream import NpmIndex, registry_url, sri_sha512

from .conftest import BASE, FakeRegistry, package_tgz


def _npm(registry: FakeRegistry, tmp_path: Path) -> NpmIndex:
    return NpmIndex(BASE, fetcher=registry, cache_root=tmp_path)


def test_lock_records_path_integrity_sha256_and_size_and_caches_the_tarball(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    tgz = package_tgz("demo", "1.0.0")
    registry.publish("demo", "1.0.0", tgz)
    locked = _npm(registry, tmp_path).lock("demo", "1.0.0")
    assert locked.path == "demo/-/demo-1.0.0.tgz"
    assert locked.integrity == sri_sha512(tgz)
    assert (locked.sha256, locked.size) == (hashlib.sha256(tgz).hexdigest(), len(tgz))
    assert registry.requests == [BASE + "demo/1.0.0", BASE + "demo/-/demo-1.0.0.tgz"]
    blob = tmp_path / "npm" / "sha512" / hashlib.sha512(tgz).hexdigest()
    assert blob.read_bytes() == tgz
    # fetched once: reading it for a build needs no registry at all
    offline = NpmIndex(
        lambda: pytest.fail("registry consulted"), fetcher=registry, cache_root=tmp_path
    )
    assert offline.tarball(locked) == tgz
    assert len(registry.requests) == 2


def test_scoped_names_escape_the_slash(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.publish("@scope/demo", "2.0.0", package_tgz("@scope/demo", "2.0.0"))
    locked = _npm(registry, tmp_path).lock("@scope/demo", "2.0.0")
    assert registry.requests[0] == BASE + "@scope%2Fdemo/2.0.0"
    assert locked.path == "@scope/demo/-/demo-2.0.0.tgz"


def test_a_corrupt_cache_entry_is_fetched_anew(registry: FakeRegistry, tmp_path: Path) -> None:
    tgz = package_tgz("demo", "1.0.0")
    registry.publish("demo", "1.0.0", tgz)
    npm = _npm(registry, tmp_path)
    locked = npm.lock("demo", "1.0.0")
    blob = tmp_path / "npm" / "sha512" / hashlib.sha512(tgz).hexdigest()
    blob.write_bytes(b"bit rot")
    assert npm.tarball(locked) == tgz
    assert blob.read_bytes() == tgz


def test_a_tarball_that_does_not_match_its_integrity_is_refused(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    path = registry.publish("demo", "1.0.0", package_tgz("demo", "1.0.0"))
    registry.files[path] = package_tgz("demo", "1.0.0", bins="bin/cli.js")  # swapped
    with pytest.raises(
        IntegrityError, match=r"demo@1\.0\.0 \(https://.*\): sha512 .* does not match"
    ):
        _npm(registry, tmp_path).lock("demo", "1.0.0")
    assert not (tmp_path / "npm" / "sha512").exists() or not any(
        (tmp_path / "npm" / "sha512").iterdir()
    )


def test_a_tarball_matching_integrity_but_not_the_locked_sha256_is_refused(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    registry.publish("demo", "1.0.0", package_tgz("demo", "1.0.0"))
    npm = _npm(registry, tmp_path)
    locked = npm.lock("demo", "1.0.0").model_copy(update={"sha256": "0" * 64})
    with pytest.raises(IntegrityError, match="not the locked sha256/size"):
        npm.tarball(locked)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"name": "demo", "version": "1.0.1", "dist": {}}, "answered demo@1.0.1 instead"),
        ({"name": "demo", "version": "1.0.0"}, "no 'dist' object"),
        (
            {"name": "demo", "version": "1.0.0", "dist": {"tarball": BASE + "x.tgz"}},
            "no 'integrity'",
        ),
        (
            {
                "name": "demo",
                "version": "1.0.0",
                "dist": {"integrity": "sha1-AAAA", "tarball": BASE + "a.tgz"},
            },
            "carries no sha512",
        ),
        (
            {
                "name": "demo",
                "version": "1.0.0",
                "dist": {"integrity": sri_sha512(b"x"), "tarball": "https://elsewhere.test/a.tgz"},
            },
            "is not under the registry",
        ),
        (
            {
                "name": "demo",
                "version": "1.0.0",
                "dist": {"integrity": sri_sha512(b"x"), "tarball": BASE + "a/../../b.tgz"},
            },
            "not a plain relative path",
        ),
    ],
)
def test_bad_version_documents_are_refused(
    registry: FakeRegistry, tmp_path: Path, doc: dict[str, object], message: str
) -> None:
    registry.publish("demo", "1.0.0", b"", doc=doc)
    with pytest.raises(RemoteContentError, match=message):
        _npm(registry, tmp_path).lock("demo", "1.0.0")


def test_a_non_json_answer_is_refused(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.files["demo/1.0.0"] = b"<html>"
    with pytest.raises(RemoteContentError, match="not JSON"):
        _npm(registry, tmp_path).lock("demo", "1.0.0")


def test_an_unknown_version_is_a_transport_error(registry: FakeRegistry, tmp_path: Path) -> None:
    with pytest.raises(HttpStatusError, match="404"):
        _npm(registry, tmp_path).lock("demo", "9.9.9")


def test_registry_url_comes_from_the_environment_first() -> None:
    def no_npm(argv: list[str]) -> str:
        raise AssertionError(argv)

    assert (
        registry_url({"NPM_CONFIG_REGISTRY": "https://r.test/npm"}, run=no_npm)
        == "https://r.test/npm/"
    )
    assert registry_url({"npm_config_registry": "https://r.test/"}, run=no_npm) == "https://r.test/"


def test_registry_url_else_from_npm_config() -> None:
    calls: list[list[str]] = []

    def npm(argv: list[str]) -> str:
        calls.append(argv)
        return "https://r.test/\n"

    assert registry_url({}, run=npm) == "https://r.test/"
    assert calls == [["config", "get", "registry"]]


@pytest.mark.parametrize("value", ["undefined", "ftp://r.test/", "https://r.test/?x=1", "r.test"])
def test_registry_url_that_is_not_http_is_refused(value: str) -> None:
    with pytest.raises(EnvironmentProblem, match="is not an http\\(s\\) base URL"):
        registry_url({"NPM_CONFIG_REGISTRY": value})
