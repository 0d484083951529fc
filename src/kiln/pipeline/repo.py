"""Production wiring of the Debian repository client: mirrors, cache, fetcher, clock."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kiln.debian import (
    BinaryPackage,
    Cache,
    Distro,
    Mirrors,
    RepoSnapshot,
    discover_mirrors,
    fetch_debs,
    load_snapshot,
)
from kiln.net import Fetcher, HttpFetcher


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Repository:
    """Where kiln reads Debian from, and where it keeps what it has verified."""

    mirrors: Mirrors
    cache: Cache
    fetcher: Fetcher
    clock: Callable[[], datetime] = _utc_now
    keyring: Path | None = None
    max_age: float = 0.0
    _snapshots: dict[tuple[str, tuple[str, ...]], RepoSnapshot] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls, *, max_age: float = 0.0, environ: Mapping[str, str] = os.environ
    ) -> Repository:
        """Host apt sources (or ``$KILN_CONFIG``), ``$KILN_CACHE``, a retrying fetcher.

        ``$KILN_KEYRING`` replaces the distro's archive keyring (for a private mirror
        signed with its own key).
        """
        keyring = Path(environ["KILN_KEYRING"]) if environ.get("KILN_KEYRING") else None
        return cls(
            discover_mirrors(environ=environ),
            Cache.default(environ),
            HttpFetcher(),
            keyring=keyring,
            max_age=max_age,
        )

    def snapshot(self, distro: Distro, archs: Sequence[str]) -> RepoSnapshot:
        """The verified indexes of ``distro`` for ``archs`` (loaded once per repository)."""
        key = (distro.id, tuple(sorted(archs)))
        if key not in self._snapshots:
            self._snapshots[key] = load_snapshot(
                distro,
                key[1],
                cache=self.cache,
                fetcher=self.fetcher,
                mirrors=self.mirrors,
                now=self.clock(),
                keyring=self.keyring,
                max_age=self.max_age,
            )
        return self._snapshots[key]

    def suite_urls(self, distro: Distro) -> Mapping[str, str]:
        return self.mirrors.suite_urls(distro)

    def fetch(self, distro: Distro, packages: Sequence[BinaryPackage]) -> list[Path]:
        """Download (or find in the cache) each package's verified .deb."""
        return fetch_debs(
            packages, base_urls=self.suite_urls(distro), cache=self.cache, fetcher=self.fetcher
        )
