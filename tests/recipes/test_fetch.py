"""Signed Sources indexes and verified source fetches against a fixture repository."""

from __future__ import annotations

import lzma
import subprocess
from pathlib import Path

import pytest

from kiln.debian.source_index import parse_sources
from kiln.errors import IntegrityError, RemoteContentError
from kiln.recipes import fetch_source, synthesise_dsc
from recipes.conftest import SourceRepo


def test_load_sources_verifies_and_orders_versions(srcrepo: SourceRepo) -> None:
    universe = srcrepo.universe()
    versions = [(p.version, p.suite) for p in universe.versions("hello")]
    assert versions == [("1.0-1+deb13u1", "trixie-security"), ("1.0-1", "trixie")]
    newest = universe.newest("hello")
    assert newest.format == "3.0 (quilt)"
    assert newest.build_depends == "dpkg-dev"
    assert {f.name for f in newest.files} == {
        "hello_1.0-1+deb13u1.dsc",
        "hello_1.0.orig.tar.gz",
        "hello_1.0-1+deb13u1.debian.tar.xz",
    }


def test_unknown_source_package_is_named(srcrepo: SourceRepo) -> None:
    with pytest.raises(RemoteContentError, match="no source package 'nope'"):
        srcrepo.universe(names=None).newest("nope")


def test_tampered_sources_index_is_refused(srcrepo: SourceRepo) -> None:
    path = "/debian/dists/trixie/main/source/Sources.xz"
    original = lzma.decompress((srcrepo.root / path.lstrip("/")).read_bytes())
    forged = original.replace(b"Version: 1.0-1", b"Version: 9.0-1")
    srcrepo.server.override(path, lzma.compress(forged, format=lzma.FORMAT_XZ))
    with pytest.raises(IntegrityError, match=r"Sources\.xz"):
        srcrepo.universe()


def test_fetch_checks_every_file_and_dpkg_source_accepts_it(
    srcrepo: SourceRepo, tmp_path: Path
) -> None:
    universe = srcrepo.universe()
    package = universe.newest("hello")
    fetched = fetch_source(
        package, tmp_path / "src", universe=universe, cache=srcrepo.cache,
        fetcher=srcrepo.fetcher(),
    )  # fmt: skip
    assert not fetched.dsc_synthesised
    assert fetched.dsc.name == "hello_1.0-1+deb13u1.dsc"
    assert "debian-security/pool/updates/main/h/hello" in fetched.mirror
    _dpkg_source_extract(fetched.dsc, tmp_path / "tree")


def test_tampered_tarball_is_refused(srcrepo: SourceRepo, tmp_path: Path) -> None:
    universe = srcrepo.universe()
    package = universe.newest("hello")
    srcrepo.server.override(
        f"/debian-security/{package.directory}/hello_1.0.orig.tar.gz", b"not the tarball"
    )
    with pytest.raises(IntegrityError, match=r"hello_1\.0\.orig\.tar\.gz"):
        fetch_source(
            package, tmp_path / "src", universe=universe, cache=srcrepo.cache,
            fetcher=srcrepo.fetcher(),
        )  # fmt: skip


def test_missing_dsc_is_synthesised_from_the_signed_index(
    srcrepo: SourceRepo, tmp_path: Path
) -> None:
    universe = srcrepo.universe()
    package = universe.versions("hello")[1]  # 1.0-1, only in the main suite
    srcrepo.server.drop(f"/debian/{package.directory}/hello_1.0-1.dsc")
    fetched = fetch_source(
        package, tmp_path / "src", universe=universe, cache=srcrepo.cache,
        fetcher=srcrepo.fetcher(),
    )  # fmt: skip
    assert fetched.dsc_synthesised
    text = fetched.dsc.read_text()
    assert "Source: hello\n" in text
    assert "Package:" not in text
    assert "Directory:" not in text
    assert "hello_1.0-1.dsc" not in text
    # dpkg-source checks the tarballs against the synthesised checksums and unpacks them.
    tree = _dpkg_source_extract(fetched.dsc, tmp_path / "tree")
    assert (tree / "debian" / "changelog").is_file()


def test_missing_tarball_names_it_and_the_mirror(srcrepo: SourceRepo, tmp_path: Path) -> None:
    universe = srcrepo.universe()
    package = universe.versions("hello")[1]
    srcrepo.server.drop(f"/debian/{package.directory}/hello_1.0-1.debian.tar.xz")
    with pytest.raises(RemoteContentError) as caught:
        fetch_source(
            package, tmp_path / "src", universe=universe, cache=srcrepo.cache,
            fetcher=srcrepo.fetcher(),
        )  # fmt: skip
    message = str(caught.value)
    assert "hello_1.0-1.debian.tar.xz" in message
    assert f"{srcrepo.server.url}/debian/pool/main/h/hello" in message


def test_parse_sources_refuses_unsafe_directory_and_weak_checksums() -> None:
    stanza = b"Package: x\nVersion: 1\nDirectory: pool/../../etc\nChecksums-Sha256:\n " + (
        b"a" * 64 + b" 1 x_1.dsc\n"
    )
    with pytest.raises(RemoteContentError, match="unsafe or missing Directory"):
        parse_sources(stanza, suite="s", source="Sources")
    no_sha = b"Package: x\nVersion: 1\nDirectory: pool/main/x/x\nFiles:\n d41d8 1 x_1.dsc\n"
    with pytest.raises(RemoteContentError, match="no Checksums-Sha256"):
        parse_sources(no_sha, suite="s", source="Sources")
    bad_name = b"Package: x\nVersion: 1\nDirectory: pool/main/x/x\nChecksums-Sha256:\n " + (
        b"a" * 64 + b" 1 ../x_1.dsc\n"
    )
    with pytest.raises(RemoteContentError, match="malformed Checksums-Sha256"):
        parse_sources(bad_name, suite="s", source="Sources")


def test_synthesised_dsc_keeps_only_dsc_fields(srcrepo: SourceRepo) -> None:
    package = srcrepo.universe().newest("hello")
    text = synthesise_dsc(package)
    assert text.startswith("Format: 3.0 (quilt)\nSource: hello\n")
    assert "Build-Depends: dpkg-dev" in text


def _dpkg_source_extract(dsc: Path, dest: Path) -> Path:
    proc = subprocess.run(
        ["dpkg-source", "--no-check", "-x", str(dsc), str(dest)],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return dest
