"""Fixtures for source-build tests: a signed source repository on loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from fixtures.debrepo import FIXTURE_DISTRO, REPO_DATE, GpgKey, RepoServer
from kiln.debian.cache import Cache
from kiln.debian.distro import Distro
from kiln.debian.source_index import SourceUniverse, load_sources
from kiln.net import HttpFetcher, RetryPolicy
from recipes.srcrepo import SourceSpec, build_source_repository

NOW = REPO_DATE + timedelta(hours=1)


@dataclass
class SourceRepo:
    """The served source repository and what a test needs to read it."""

    root: Path
    server: RepoServer
    key: GpgKey
    cache: Cache
    files: dict[str, dict[str, list[Path]]]

    @property
    def distro(self) -> Distro:
        return FIXTURE_DISTRO

    @property
    def mirrors(self) -> dict[str, str]:
        return {
            "trixie": f"{self.server.url}/debian",
            "trixie-updates": f"{self.server.url}/debian",
            "trixie-security": f"{self.server.url}/debian-security",
        }

    def fetcher(self) -> HttpFetcher:
        return HttpFetcher(retry=RetryPolicy(attempts=1))

    def universe(self, names: tuple[str, ...] | None = ("hello",)) -> SourceUniverse:
        return load_sources(
            self.distro,
            cache=self.cache,
            fetcher=self.fetcher(),
            mirrors=self.mirrors,
            now=NOW,
            keyring=self.key.keyring,
            names=names,
        )


@pytest.fixture(scope="session")
def srcrepo_root(tmp_path_factory: pytest.TempPathFactory, debrepo_key: GpgKey) -> Path:
    root = tmp_path_factory.mktemp("srcrepo")
    files = build_source_repository(
        root,
        {"trixie": [SourceSpec("1.0-1")], "trixie-security": [SourceSpec("1.0-1+deb13u1")]},
        key=debrepo_key,
    )
    (root / "files.txt").write_text(
        "\n".join(f"{s} {v} {p}" for s, vs in files.items() for v, ps in vs.items() for p in ps)
    )
    return root


@pytest.fixture
def srcrepo(srcrepo_root: Path, debrepo_key: GpgKey, tmp_path: Path) -> Iterator[SourceRepo]:
    files: dict[str, dict[str, list[Path]]] = {}
    for line in (srcrepo_root / "files.txt").read_text().splitlines():
        suite, version, path = line.split(" ", 2)
        files.setdefault(suite, {}).setdefault(version, []).append(Path(path))
    with RepoServer(srcrepo_root) as server:
        yield SourceRepo(srcrepo_root, server, debrepo_key, Cache(tmp_path / "cache"), files)
