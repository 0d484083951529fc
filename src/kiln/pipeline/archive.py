"""Production wiring of the Debian archive client: mirrors, cache, fetcher, clock.

Names (issue 14 item 7): the *archive* is Debian's (``ArchiveAccess`` reads it, with
kiln's own apt repository overlaid when a spec asks); kiln's *apt repository* is
``KilnAptRepo`` here and ``kiln.aptrepo`` (publish, serve); a *repository* in
``kiln.registry`` is an OCI registry repository name (``Reference.repository``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

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
from kiln.errors import InputError
from kiln.net import Fetcher, HttpFetcher, SchemeFetcher, path_of_file_url

if TYPE_CHECKING:
    from kiln.spec import ImageSpec

KILN_SUITE = "kiln"
KEYRING_NAME = "kiln-archive-keyring.gpg"  # what kiln repo publish exports beside the indexes


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class KilnAptRepo:
    """Where kiln's own signed apt repository is, and the keyring its Release verifies with."""

    url: str  # http(s):// or file:///
    keyring: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> KilnAptRepo | None:
        """``$KILN_REPO`` (a URL or a directory) and ``$KILN_REPO_KEYRING``.

        For a directory or ``file://`` URL the keyring defaults to the one ``kiln repo
        publish`` exports into it; a remote repository needs ``$KILN_REPO_KEYRING``, since
        a key fetched from the same server would prove nothing.
        """
        where = environ.get("KILN_REPO", "").strip()
        if not where:
            return None
        if "://" not in where:
            where = Path(where).resolve().as_uri()
        keyring = environ.get("KILN_REPO_KEYRING", "").strip()
        if keyring:
            return cls(where.rstrip("/"), Path(keyring))
        if where.startswith("file:"):
            return cls(where.rstrip("/"), path_of_file_url(where) / KEYRING_NAME)
        raise InputError(
            f"KILN_REPO={where} is remote and KILN_REPO_KEYRING is not set",
            hint="point KILN_REPO_KEYRING at the repository's exported public keyring",
        )


@dataclass
class ArchiveAccess:
    """Where kiln reads Debian from, and where it keeps what it has verified."""

    mirrors: Mirrors
    cache: Cache
    fetcher: Fetcher
    clock: Callable[[], datetime] = _utc_now
    keyring: Path | None = None
    max_age: float = 0.0
    kiln_repo: KilnAptRepo | None = None
    _snapshots: dict[tuple[str, tuple[str, ...]], RepoSnapshot] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls, *, max_age: float = 0.0, environ: Mapping[str, str] = os.environ
    ) -> ArchiveAccess:
        """Host apt sources (or ``$KILN_CONFIG``), ``$KILN_CACHE``, a retrying fetcher.

        ``$KILN_KEYRING`` replaces the distro's archive keyring (for a private mirror
        signed with its own key); ``$KILN_REPO`` names kiln's own repository
        (``KilnAptRepo.from_environment``) for specs that list ``repositories: [kiln]``.
        """
        keyring = Path(environ["KILN_KEYRING"]) if environ.get("KILN_KEYRING") else None
        return cls(
            discover_mirrors(environ=environ),
            Cache.default(environ),
            SchemeFetcher(HttpFetcher()),
            keyring=keyring,
            max_age=max_age,
            kiln_repo=KilnAptRepo.from_environment(environ),
        )

    def snapshot(self, distro: Distro, archs: Sequence[str]) -> RepoSnapshot:
        """The verified indexes of ``distro`` for ``archs`` (loaded once per ``ArchiveAccess``)."""
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

    def snapshot_for(self, spec: ImageSpec) -> RepoSnapshot:
        """The snapshot a spec resolves against: Debian's, with kiln's repository overlaid
        when the spec lists it (a rebuild wins only when not older than Debian's newest)."""
        from kiln.aptrepo import overlay_snapshot  # noqa: PLC0415 (only such specs load it)
        from kiln.debian import get_distro  # noqa: PLC0415

        base = self.snapshot(get_distro(spec.distro), spec.archs)
        if KILN_SUITE not in spec.repositories:
            return base
        if self.kiln_repo is None:
            raise InputError(
                f"image {spec.name!r} lists repositories: [kiln], and KILN_REPO is not set",
                hint="set KILN_REPO to the directory (or URL) kiln repo publish wrote",
            )
        key = (f"{spec.distro}+kiln", tuple(sorted(spec.archs)))
        if key not in self._snapshots:
            self._snapshots[key] = overlay_snapshot(
                base,
                self.kiln_repo.url,
                keyring=self.kiln_repo.keyring,
                cache=self.cache,
                fetcher=self.fetcher,
                now=self.clock(),
                suite=KILN_SUITE,
            )
        return self._snapshots[key]

    def suite_urls(self, distro: Distro) -> Mapping[str, str]:
        urls = dict(self.mirrors.suite_urls(distro))
        if self.kiln_repo is not None:
            urls[KILN_SUITE] = self.kiln_repo.url
        return urls

    def fetch(self, distro: Distro, packages: Sequence[BinaryPackage]) -> list[Path]:
        """Download (or find in the cache) each package's verified .deb."""
        return fetch_debs(
            packages, base_urls=self.suite_urls(distro), cache=self.cache, fetcher=self.fetcher
        )
