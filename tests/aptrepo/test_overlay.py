"""kiln's repository overlaid on Debian's: the resolver prefers rebuilds that are not older."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fixtures.debrepo import REPO_DATE, DebRepo, DebSpec, RepoServer, build_deb
from kiln.aptrepo import SigningKey, ensure_signing_key, overlay_snapshot, publish
from kiln.debian.cache import Cache
from kiln.debian.client import fetch_debs, load_snapshot
from kiln.net import HttpFetcher, RetryPolicy
from kiln.resolve import resolve

NOW = REPO_DATE + timedelta(hours=1)


@pytest.fixture(scope="module")
def kiln_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    key = ensure_signing_key(tmp_path_factory.mktemp("kiln-gnupg"))
    yield key
    subprocess.run(
        ["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False, timeout=30
    )


def test_resolver_prefers_kiln_rebuilds_that_are_not_older(
    debrepo: DebRepo, kiln_key: SigningKey, tmp_path: Path
) -> None:
    newer = build_deb(
        DebSpec("tzdata", "2025c-0+deb13u1+kiln1", depends="debconf (>= 0.5) | debconf-2.0"),
        tmp_path / "debs" / "tzdata.deb",
    )
    # A stale rebuild of an older base: Debian's newer security fix must still win, even
    # though 3.5.1-1+kiln1 sorts above 3.5.1-1+deb13u1.
    stale = build_deb(
        DebSpec("libssl3t64", "3.5.1-1+kiln1", "amd64", source="openssl", multi_arch="same",
                provides="libssl3 (= 3.5.1-1+kiln1)", depends="libc6 (>= 2.34)"),
        tmp_path / "debs" / "libssl.deb",
    )  # fmt: skip
    repo = tmp_path / "kiln-repo"
    published = publish(repo, [newer, stale], key=kiln_key, date=REPO_DATE, archs=("amd64",))
    cache = Cache(tmp_path / "cache")
    fetcher = HttpFetcher(retry=RetryPolicy(attempts=1))
    snapshot = load_snapshot(
        debrepo.distro, ["amd64"], cache=cache, fetcher=fetcher, mirrors=debrepo.mirrors,
        now=NOW, keyring=debrepo.keyring,
    )  # fmt: skip
    with RepoServer(repo) as server:
        merged = overlay_snapshot(
            snapshot, server.url, keyring=published.keyring, cache=cache, fetcher=fetcher,
            now=NOW,
        )  # fmt: skip
        assert merged.releases[-1].suite == "kiln"
        assert merged.base_urls["kiln"] == server.url
        resolution = resolve(
            ["tzdata", "libssl3t64"], merged.universe("amd64"), drop_install_time_only=False
        )
        chosen = {p.name: p for p in resolution.packages}
        assert chosen["tzdata"].version == "2025c-0+deb13u1+kiln1"
        assert chosen["tzdata"].suite == "kiln"
        assert chosen["libssl3t64"].version == "3.5.1-1+deb13u1"
        assert chosen["libssl3t64"].suite == "trixie-security"
        # The rebuilt .deb is fetched from kiln's repository, checked against its index.
        (path,) = fetch_debs(
            [chosen["tzdata"]], base_urls=merged.base_urls, cache=cache, fetcher=fetcher
        )
        assert path.read_bytes() == newer.read_bytes()


def test_kiln_base_version() -> None:
    from kiln.aptrepo.overlay import kiln_base_version

    assert kiln_base_version("1.7.1-6+deb13u4+kiln2") == "1.7.1-6+deb13u4"
    assert kiln_base_version("1.0-1") == "1.0-1"


def test_lock_records_packages_from_kilns_repository(
    debrepo: DebRepo, kiln_key: SigningKey, tmp_path: Path
) -> None:
    from kiln.pipeline.lock import lock_spec
    from kiln.spec import parse_spec

    rebuilt = build_deb(
        DebSpec("tzdata", "2025c-0+deb13u1+kiln1", depends="debconf (>= 0.5) | debconf-2.0"),
        tmp_path / "debs" / "tzdata.deb",
    )
    repo = tmp_path / "kiln-repo"
    published = publish(repo, [rebuilt], key=kiln_key, date=REPO_DATE, archs=("amd64",))
    cache = Cache(tmp_path / "cache")
    fetcher = HttpFetcher(retry=RetryPolicy(attempts=1))
    snapshot = load_snapshot(
        debrepo.distro, ["amd64"], cache=cache, fetcher=fetcher, mirrors=debrepo.mirrors,
        now=NOW, keyring=debrepo.keyring,
    )  # fmt: skip
    spec = parse_spec(
        b"name: tz\ndistro: debian-13\narchs: [amd64]\npackages: [tzdata]\n", tmp_path / "tz.yaml"
    )
    with RepoServer(repo) as server:
        merged = overlay_snapshot(
            snapshot, server.url, keyring=published.keyring, cache=cache, fetcher=fetcher,
            now=NOW,
        )  # fmt: skip
        lock = lock_spec(spec, merged).lock
    assert [r.suite for r in lock.releases][-1] == "kiln"
    packages = {p.name: p for p in lock.variants["runtime"]["amd64"].packages}
    assert packages["tzdata"].suite == "kiln"
    assert packages["tzdata"].version == "2025c-0+deb13u1+kiln1"
