"""Shared fixtures for CLI tests: a signed fixture archive on loopback, wired via env."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.debrepo import (
    DebSpec,
    GpgKey,
    RepoServer,
    build_repository,
    default_mirror_dir,
    standard_packages,
)

SPEC = """\
name: demo
distro: debian-13
packages:
  - python3.13-minimal
  - tzdata
exclude: [openssl]
variants:
  dev:
    packages: [ca-certificates]
    exclude: [openssl]  # the fixture archive has no openssl
"""


@dataclass
class Env:
    root: Path
    server: RepoServer
    key: GpgKey
    spec: Path

    @property
    def lock(self) -> Path:
        return self.spec.with_name("demo.lock.json")

    def rebuild(self, extra_security: list[DebSpec]) -> None:
        suites = standard_packages()
        suites["trixie-security"] = [*suites["trixie-security"], *extra_security]
        build_repository(self.root, suites, key=self.key, valid_until=None)


@pytest.fixture
def env(tmp_path: Path, debrepo_key: GpgKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    root = tmp_path / "repo"
    # No Valid-Until: the CLI checks against the real clock.
    build_repository(root, standard_packages(), key=debrepo_key, valid_until=None)
    with RepoServer(root) as server:
        config = tmp_path / "config.yaml"
        config.write_text(
            "mirrors:\n"
            f"  debian: {server.url}/{default_mirror_dir('trixie')}\n"
            f"  debian-security: {server.url}/{default_mirror_dir('trixie-security')}\n"
        )
        monkeypatch.setenv("KILN_CONFIG", str(config))
        monkeypatch.setenv("KILN_KEYRING", str(debrepo_key.keyring))
        monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))
        spec = tmp_path / "images" / "demo.yaml"
        spec.parent.mkdir()
        spec.write_text(SPEC)
        yield Env(root, server, debrepo_key, spec)
