"""Read a distro's signed Debian repository into a frozen ``RepoSnapshot``; fetch .debs.

The I/O edge of the repository client, following apt's secure acquisition
(https://wiki.debian.org/SecureApt, https://wiki.debian.org/DebianRepository/Format):

1. per suite, ``InRelease`` is fetched (conditionally, with the cached ETag and
   Last-Modified) and verified with gpgv; when the mirror has no ``InRelease`` (404),
   ``Release`` + ``Release.gpg``. A Release older than the one already cached is a
   rollback and is refused.
2. per suite and architecture, ``main/binary-<arch>/Packages.xz`` (by hash when the
   Release says ``Acquire-By-Hash: yes``) is checked against the size and sha256 in the
   signed Release before it is decompressed, then converted once into the compact table
   of ``kiln.debian.index``, cached under its sha256.
3. the tables of the suites are merged into one ``MergedUniverse`` per architecture,
   cached under the digests of its inputs: a warm load reads one file per architecture.

Downloads run in a small thread pool; the fetcher retries transport errors with
backoff. A size or digest mismatch raises ``IntegrityError`` at once and is never
retried. The fetcher, the cache, the mirrors, the keyring and the clock are injected.
"""

from __future__ import annotations

import hashlib
import lzma
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from kiln.debian.cache import Cache, FetchRecord, verify_bytes
from kiln.debian.distro import Distro
from kiln.debian.index import (
    FORMAT_VERSION,
    MergedUniverse,
    PackagesTable,
    PackageUniverse,
    merge_tables,
    parse_packages,
)
from kiln.debian.model import BinaryPackage, ReleaseIdentity
from kiln.debian.release import VerifiedRelease, check_release, verify_release
from kiln.debian.sources import Mirrors
from kiln.errors import IntegrityError, RemoteContentError, SignatureError
from kiln.net import Fetcher, HttpStatusError, ResponseTooLargeError

DEFAULT_WORKERS = 4
_MAX_RELEASE_BYTES = 64 * 1024 * 1024
_MAX_PACKAGES_BYTES = 1024 * 1024 * 1024  # decompressed Packages; trixie's is ~60 MB
#: HTTP statuses meaning the mirror does not have a file (apt then tries the next way).
NOT_FOUND = frozenset({404, 410})

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class RepoSnapshot:
    """A distro's verified indexes at one moment: Release identities and candidates."""

    distro: Distro
    releases: tuple[ReleaseIdentity, ...]  # in the distro's suite order
    universes: Mapping[str, PackageUniverse] = field(repr=False)  # arch -> candidates

    @property
    def archs(self) -> tuple[str, ...]:
        return tuple(self.universes)

    def universe(self, arch: str) -> PackageUniverse:
        try:
            return self.universes[arch]
        except KeyError:
            raise KeyError(f"snapshot has no index for {arch} (has {self.archs})") from None

    def release(self, suite: str) -> ReleaseIdentity:
        for identity in self.releases:
            if identity.suite == suite:
                return identity
        raise KeyError(f"snapshot has no suite {suite!r}")

    @property
    def base_urls(self) -> Mapping[str, str]:
        """Suite -> mirror root, for ``fetch_debs``."""
        return MappingProxyType({r.suite: r.base_url for r in self.releases})


def load_snapshot(
    distro: Distro,
    archs: Sequence[str],
    *,
    cache: Cache,
    fetcher: Fetcher,
    mirrors: Mirrors | Mapping[str, str],
    now: datetime,
    keyring: Path | None = None,
    components: Sequence[str] = ("main",),
    max_age: float = 0.0,
    workers: int = DEFAULT_WORKERS,
) -> RepoSnapshot:
    """Fetch, verify and index ``distro``'s suites for ``archs``.

    ``mirrors`` maps each suite to its mirror root (a ``Mirrors`` is mapped with
    ``suite_urls``). ``now`` (timezone-aware) is checked against ``Valid-Until``.
    ``max_age`` seconds: a cached ``InRelease`` checked more recently than that is used
    without asking the mirror (0: always send a conditional request).
    """
    if not archs:
        raise ValueError("load_snapshot needs at least one architecture")
    if now.tzinfo is None:
        raise ValueError("load_snapshot needs a timezone-aware 'now' (e.g. datetime.now(UTC))")
    suite_urls = mirrors.suite_urls(distro) if isinstance(mirrors, Mirrors) else dict(mirrors)
    ring = keyring if keyring is not None else Path(distro.keyring)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="kiln-fetch") as pool:
        verified = _map(
            pool,
            lambda suite: load_release(
                suite,
                suite_base_url(suite_urls, suite),
                cache=cache,
                fetcher=fetcher,
                keyring=ring,
                now=now,
                max_age=max_age,
            ),
            distro.suites,
        )
        universes: dict[str, PackageUniverse] = {}
        missing: list[tuple[str, list[_IndexRef]]] = []
        for arch in archs:
            refs = [
                _IndexRef(v.identity.suite, component, arch, v)
                for v in verified
                for component in components
            ]
            key = _universe_key(arch, refs)
            cached = cache.get_derived(key)
            if cached is not None:
                try:
                    universes[arch] = MergedUniverse.from_bytes(cached)
                    continue
                except ValueError:
                    cache.discard_derived(key)
            missing.append((arch, refs))
        if missing:
            all_refs = [ref for _arch, refs in missing for ref in refs]
            tables = dict(
                zip(
                    all_refs,
                    _map(
                        pool,
                        lambda ref: load_packages_table(
                            ref.release, ref.component, ref.arch, cache=cache, fetcher=fetcher
                        ),
                        all_refs,
                    ),
                    strict=True,
                )
            )
            for arch, refs in missing:
                merged = merge_tables(arch, [(ref.suite, tables[ref]) for ref in refs])
                cache.put_derived(_universe_key(arch, refs), merged.to_bytes())
                universes[arch] = merged
    return RepoSnapshot(
        distro=distro,
        releases=tuple(v.identity for v in verified),
        universes=MappingProxyType({arch: universes[arch] for arch in archs}),
    )


def fetch_debs(
    packages: Sequence[BinaryPackage],
    *,
    base_urls: Mapping[str, str],
    cache: Cache,
    fetcher: Fetcher,
    workers: int = DEFAULT_WORKERS,
) -> list[Path]:
    """Download ``packages``' .deb files into the cache; return their paths, in order.

    Each file is checked against the size and sha256 of its signed index entry before
    it becomes visible in the cache; a file already cached is re-checked, and fetched
    again if it is corrupt. ``base_urls`` maps suites to mirror roots
    (``RepoSnapshot.base_urls``).
    """

    def one(package: BinaryPackage) -> Path:
        found = cache.find_blob(package.sha256, size=package.size)
        if found is not None:
            return found
        url = f"{suite_base_url(base_urls, package.suite)}/{package.filename}"
        source = f"{url} ({package.name} {package.version} {package.architecture})"
        body = fetch_promised(fetcher, url, size=package.size, source=source)
        return cache.put_blob(body, sha256=package.sha256, size=package.size, source=source)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="kiln-deb") as pool:
        return _map(pool, one, packages)


# -- internals -------------------------------------------------------------------


@dataclass(frozen=True)
class _IndexRef:
    suite: str
    component: str
    arch: str
    release: VerifiedRelease = field(compare=False, hash=False)

    @property
    def path(self) -> str:
        return f"{self.component}/binary-{self.arch}/Packages.xz"

    @property
    def sha256(self) -> str:
        return self.release.release.entry(self.path, source=self.source).sha256

    @property
    def source(self) -> str:
        return f"{self.release.identity.base_url}/dists/{self.suite}/{self.path}"


def fetch_promised(fetcher: Fetcher, url: str, *, size: int, source: str) -> bytes:
    """Download a file whose size the signed index promises; larger is an integrity fault."""
    try:
        return fetcher.fetch(url, max_bytes=size).body
    except ResponseTooLargeError as exc:
        raise IntegrityError(
            f"{source}: the server sends more than the {size} bytes promised by the signed index",
            hint="this is corruption or an attack; kiln does not retry it",
        ) from exc


def _map(pool: ThreadPoolExecutor, fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    futures = [pool.submit(fn, item) for item in items]
    results: list[_R] = []
    error: BaseException | None = None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # re-raised below: the first error wins
            if error is None:
                error = exc
    if error is not None:
        raise error
    return results


def suite_base_url(urls: Mapping[str, str], suite: str) -> str:
    try:
        return urls[suite].rstrip("/")
    except KeyError:
        raise ValueError(f"no mirror URL for suite {suite!r}") from None


def _record_key(url: str) -> str:
    return "release-" + hashlib.sha256(url.encode()).hexdigest()[:32]


def _universe_key(arch: str, refs: Sequence[_IndexRef]) -> str:
    parts = [f"v{FORMAT_VERSION}", arch] + [f"{r.suite}:{r.component}:{r.sha256}" for r in refs]
    return f"universe-{arch}-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load_release(
    suite: str,
    base_url: str,
    *,
    cache: Cache,
    fetcher: Fetcher,
    keyring: Path,
    now: datetime,
    max_age: float,
) -> VerifiedRelease:
    inrelease_url = f"{base_url}/dists/{suite}/InRelease"
    key = _record_key(inrelease_url)
    record = cache.get_record(key)
    cached = _cached_release(record, suite, base_url, cache=cache, keyring=keyring, now=now)
    fresh = record is not None and 0 <= now.timestamp() - record.checked_at < max_age
    if cached is not None and fresh:
        return cached
    conditional = cached is not None and record is not None and record.kind == "InRelease"
    try:
        result = fetcher.fetch(
            inrelease_url,
            max_bytes=_MAX_RELEASE_BYTES,
            etag=record.etag if conditional and record else None,
            last_modified=record.last_modified if conditional and record else None,
        )
    except HttpStatusError as exc:
        if exc.status not in NOT_FOUND:
            raise
        return _load_detached(
            suite, base_url, cache=cache, fetcher=fetcher, keyring=keyring, now=now, cached=cached
        )
    if result.not_modified:
        if conditional and cached is not None and record is not None:
            cache.put_record(key, record.model_copy(update={"checked_at": now.timestamp()}))
            return cached
        # A 304 we did not ask for: ask again without validators.
        result = fetcher.fetch(inrelease_url, max_bytes=_MAX_RELEASE_BYTES)
    verified = _verify(
        cache,
        result.body,
        None,
        suite=suite,
        base_url=base_url,
        keyring=keyring,
        now=now,
        source=inrelease_url,
    )
    _check_rollback(cached, verified, source=inrelease_url)
    digest = cache.add_blob(result.body)
    cache.put_record(
        key,
        FetchRecord(
            url=inrelease_url,
            kind="InRelease",
            sha256=digest,
            etag=result.etag,
            last_modified=result.last_modified,
            checked_at=now.timestamp(),
        ),
    )
    return verified


def _cached_release(
    record: FetchRecord | None,
    suite: str,
    base_url: str,
    *,
    cache: Cache,
    keyring: Path,
    now: datetime,
) -> VerifiedRelease | None:
    """The cached Release of ``suite``, checked again; ``None`` if absent or unusable."""
    if record is None:
        return None
    text = cache.read_blob(record.sha256)
    signature = cache.read_blob(record.signature_sha256) if record.signature_sha256 else None
    if text is None or (record.kind != "InRelease" and signature is None):
        return None
    try:
        return _verify(
            cache,
            text,
            signature,
            suite=suite,
            base_url=base_url,
            keyring=keyring,
            now=now,
            source=f"{base_url}/dists/{suite}/{record.kind} (cached)",
        )
    except RemoteContentError:
        # Expired since it was cached, or the keyring changed: fetch it anew.
        return None


def _verify(
    cache: Cache,
    text: bytes,
    signature: bytes | None,
    *,
    suite: str,
    base_url: str,
    keyring: Path,
    now: datetime,
    source: str,
) -> VerifiedRelease:
    """Verify an InRelease (``signature`` None) or a Release + Release.gpg.

    gpgv's verdict is remembered under the digests of the bytes and of the keyring, so
    bytes already verified against this keyring are not verified again (a keyring
    update verifies anew); suite and Valid-Until are checked against ``now`` every time.
    """
    memo = _verification_key(text, signature, suite, base_url, keyring)
    remembered = cache.get_derived(memo)
    if remembered is not None:
        try:
            verified = VerifiedRelease.from_json(bytes(remembered))
        except ValueError:
            cache.discard_derived(memo)
        else:
            check_release(verified.release, suite=suite, now=now, source=source)
            return verified
    if signature is None:
        verified = verify_release(
            suite=suite, base_url=base_url, keyring=keyring, now=now, inrelease=text, source=source
        )
    else:
        verified = verify_release(
            suite=suite,
            base_url=base_url,
            keyring=keyring,
            now=now,
            release=text,
            release_gpg=signature,
            source=source,
        )
    cache.put_derived(memo, verified.to_json())
    return verified


def _verification_key(
    text: bytes, signature: bytes | None, suite: str, base_url: str, keyring: Path
) -> str:
    try:
        ring = hashlib.sha256(keyring.read_bytes()).hexdigest()
    except OSError:
        ring = "unreadable"
    parts = [
        "verified-v1",
        hashlib.sha256(text).hexdigest(),
        hashlib.sha256(signature).hexdigest() if signature is not None else "-",
        suite,
        base_url,
        ring,
    ]
    return "verified-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _load_detached(
    suite: str,
    base_url: str,
    *,
    cache: Cache,
    fetcher: Fetcher,
    keyring: Path,
    now: datetime,
    cached: VerifiedRelease | None,
) -> VerifiedRelease:
    release_url = f"{base_url}/dists/{suite}/Release"
    release = fetcher.fetch(release_url, max_bytes=_MAX_RELEASE_BYTES)
    try:
        signature = fetcher.fetch(f"{release_url}.gpg", max_bytes=1024 * 1024).body
    except HttpStatusError as exc:
        if exc.status not in NOT_FOUND:
            raise
        raise SignatureError(
            f"{base_url}/dists/{suite}: not signed (no InRelease and no Release.gpg)",
            hint="kiln refuses unsigned indexes; check the mirror URL",
        ) from exc
    verified = _verify(
        cache,
        release.body,
        signature,
        suite=suite,
        base_url=base_url,
        keyring=keyring,
        now=now,
        source=release_url,
    )
    _check_rollback(cached, verified, source=release_url)
    digest, signature_digest = cache.add_blob(release.body), cache.add_blob(signature)
    cache.put_record(
        _record_key(f"{base_url}/dists/{suite}/InRelease"),
        FetchRecord(
            url=release_url,
            kind="Release",
            sha256=digest,
            signature_sha256=signature_digest,
            checked_at=now.timestamp(),
        ),
    )
    return verified


def _check_rollback(
    previous: VerifiedRelease | None, current: VerifiedRelease, *, source: str
) -> None:
    if previous is None:
        return
    old, new = previous.release, current.release
    if new.date_parsed < old.date_parsed:
        raise RemoteContentError(
            f"{source}: the mirror serves a Release dated {new.date}, older than the "
            f"{old.date} kiln already verified (a rollback)",
            hint="the mirror is stale or replaying old metadata; try another mirror",
        )


def fetch_index(release: VerifiedRelease, path: str, *, cache: Cache, fetcher: Fetcher) -> bytes:
    """The decompressed bytes of ``path`` (``main/source/Sources.xz``, ...) that a
    verified Release names: the one way kiln reads an archive index.

    Fetched by hash when the Release says ``Acquire-By-Hash: yes`` (the canonical name
    when the mirror has no by-hash file, as apt does), never more bytes than the Release
    promises, its sha256 checked before it is decompressed (``IntegrityError``, never
    retried), decompressed with a bound (``RemoteContentError`` for a bomb or a broken
    stream) and, when the Release lists the uncompressed file too, that hash checked.
    The compressed bytes are kept in ``cache`` under their sha256.
    """
    source = f"{release.identity.base_url}/dists/{release.identity.suite}/{path}"
    entry = release.release.entry(path, source=source)
    compressed = cache.read_blob(entry.sha256, size=entry.size)
    if compressed is None:
        url = source
        if release.release.acquire_by_hash:
            url = f"{source.rsplit('/', 1)[0]}/by-hash/SHA256/{entry.sha256}"
        try:
            body = fetch_promised(fetcher, url, size=entry.size, source=url)
        except HttpStatusError as exc:
            if not release.release.acquire_by_hash or exc.status not in NOT_FOUND:
                raise
            url = source
            body = fetch_promised(fetcher, url, size=entry.size, source=url)
        cache.put_blob(body, sha256=entry.sha256, size=entry.size, source=url)
        compressed = body
    if not path.endswith(".xz"):
        return compressed
    plain = _decompress_xz(compressed, source=source)
    uncompressed = release.release.files.get(path.removesuffix(".xz"))
    if uncompressed is not None:
        verify_bytes(
            plain,
            sha256=uncompressed.sha256,
            size=uncompressed.size,
            source=f"{source} (decompressed)",
        )
    return plain


def load_packages_table(
    release: VerifiedRelease, component: str, arch: str, *, cache: Cache, fetcher: Fetcher
) -> PackagesTable:
    """The ``component``/``arch`` Packages index a verified Release names, as a table
    (converted once, cached under the index's sha256)."""
    ref = _IndexRef(release.identity.suite, component, arch, release)
    entry = release.release.entry(ref.path, source=ref.source)
    key = f"packages-v{FORMAT_VERSION}-{ref.arch}-{entry.sha256}"
    cached = cache.get_derived(key)
    if cached is not None:
        try:
            table = PackagesTable.from_bytes(cached)
        except ValueError:
            cache.discard_derived(key)
        else:
            if table.arch == ref.arch and table.component == ref.component:
                return table
    plain = fetch_index(release, ref.path, cache=cache, fetcher=fetcher)
    table = parse_packages(plain, arch=ref.arch, source=ref.source, component=ref.component)
    cache.put_derived(key, table.to_bytes())
    return table


def _decompress_xz(data: bytes, *, source: str) -> bytes:
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        plain = decompressor.decompress(data, max_length=_MAX_PACKAGES_BYTES)
    except lzma.LZMAError as exc:
        raise RemoteContentError(f"{source}: not a valid xz stream: {exc}") from exc
    if not decompressor.eof:
        if decompressor.needs_input:
            raise RemoteContentError(f"{source}: truncated xz stream")
        raise RemoteContentError(
            f"{source}: decompresses to more than {_MAX_PACKAGES_BYTES} bytes",
            hint="refused as a decompression bomb",
        )
    if decompressor.unused_data:
        raise IntegrityError(f"{source}: trailing data after the xz stream")
    return plain
