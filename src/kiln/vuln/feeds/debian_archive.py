"""Vulnerability truth from Debian's own signed archive: the CVEs each version's changelog names.

The ``debian-archive`` feed reads, for every source package in scope and every suite of
``<codename>``, ``<codename>-updates``, ``<codename>-security``, ``sid`` and
``experimental``, the changelog of the suite's version of the source, through the same
signed path as everything else (InRelease verified with gpgv, ``Packages.xz`` checked
against it, each .deb against its index entry; ``kiln.debian.client``). It records the
first version naming each CVE per suite (``ArchiveMention``) and derives a status for the
stable release (``ArchiveStatus``): ``fixed`` when a stable suite's changelog names it,
``fix-in-unstable`` when only unstable/experimental versions newer than the stable
candidate do. Mentions in "does not affect"-style phrasings are kept as low-confidence
(``changelog_mentions``).

Which artifact: the smallest binary .deb of the source in the suite (its
``/usr/share/doc/<pkg>/changelog.Debian.gz`` is the source's whole changelog; a binNMU's
own ``changelog.Debian.<arch>.gz`` is not read). When that package's doc directory is a
symlink to another package's, the binary it points to is tried next (then the next
smallest). Arch-all packages are listed in every ``binary-<arch>`` index, so arch-all-only
sources need nothing special. Parsed changelogs are cached by (source, version): a run
after a new Release fetches only the versions that changed; a run whose signed Releases
are all unchanged is a no-op (the input digest covers them and the scope).
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import re
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

from kiln.debian.cache import Cache
from kiln.debian.client import (  # the signed-index path every archive read takes
    NOT_FOUND,
    fetch_debs,
    fetch_index,
    fetch_promised,
    load_packages_table,
    load_release,
    suite_base_url,
)
from kiln.debian.deb import BIG_DEB, ChangelogNotFound, DebFormatError, source_changelog
from kiln.debian.distro import Distro
from kiln.debian.index import package_from_record
from kiln.debian.model import BinaryPackage
from kiln.debian.release import VerifiedRelease, parse_release, verify_clearsigned
from kiln.debian.source_index import SourcePackage, parse_sources
from kiln.debian.sources import Mirrors
from kiln.debian.version import compare_versions
from kiln.errors import InputError, IntegrityError, Location, RemoteContentError
from kiln.net import Fetcher, HttpStatusError
from kiln.vuln.feeds.changelog_mentions import (
    MAX_CHANGELOG_BYTES,
    RULES_VERSION,
    Mention,
    mentions_from_changelog,
)
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning, ImportMode
from kiln.vuln.feeds.source import FeedInput, from_bytes
from kiln.vuln.model import ArchiveMention, ArchiveStatus, FeedRecord

UNSTABLE_SUITES = ("sid", "experimental")
MAX_TRIES = 4  # binaries tried per (source, suite) before giving up on a changelog
_DEBIAN_TAR_RE = re.compile(r"\.debian\.tar\.(?:xz|gz|bz2)$")
_MAX_TAR_MEMBERS = 100_000
_CACHE_VERSION = f"archive-changelog-v1.{RULES_VERSION}"


def archive_suites(distro: Distro) -> tuple[str, ...]:
    """The suites read: the stable release's three, then unstable and experimental."""
    return (*distro.suites, *UNSTABLE_SUITES)


def suite_urls(distro: Distro, mirrors: Mirrors | Mapping[str, str]) -> dict[str, str]:
    """Suite -> mirror root; sid and experimental come from the main Debian mirror."""
    if not isinstance(mirrors, Mirrors):
        return dict(mirrors)
    urls = mirrors.suite_urls(distro)
    return {**urls, **dict.fromkeys(UNSTABLE_SUITES, mirrors.debian)}


# --- the pure half: one source's changelogs per suite -> records ---------------------


@dataclass(frozen=True)
class SuiteChangelog:
    """What one suite's version of a source says: the version and its mentions."""

    suite: str
    version: str
    mentions: tuple[Mention, ...]


def _newer(a: str, b: str) -> bool:
    return compare_versions(a, b) > 0


def derive(
    source: str, changelogs: Sequence[SuiteChangelog], *, distro: Distro
) -> list[ArchiveMention | ArchiveStatus]:
    """The mentions and the stable-release statuses of one source (pure).

    A suite's version fixes what its changelog names from the first naming entry on,
    but never from later than itself: a backport (2.9.0-1~deb13u1) carries the entries
    of the unstable versions it was made from (2.9.0-1), which sort above it.
    """
    changelogs = [
        replace(
            c,
            mentions=tuple(replace(m, version=_at_most(m.version, c.version)) for m in c.mentions),
        )
        for c in changelogs
    ]
    out: list[ArchiveMention | ArchiveStatus] = [
        ArchiveMention(source, m.cve, c.suite, m.version, m.line, m.confidence)
        for c in changelogs
        for m in c.mentions
    ]
    stable = [c for c in changelogs if c.suite in distro.suites]
    if not stable:
        return out  # not in the release: nothing to say about it
    candidate = stable[0].version
    for c in stable[1:]:
        if _newer(c.version, candidate):
            candidate = c.version
    newer = [c for c in changelogs if c.suite in UNSTABLE_SUITES and _newer(c.version, candidate)]
    cves = sorted({m.cve for c in changelogs for m in c.mentions})
    for cve in cves:
        named = [(c, m) for c in stable for m in c.mentions if m.cve == cve]
        status = "fixed"
        if not named:
            status = "fix-in-unstable"
            named = [(c, m) for c in newer for m in c.mentions if m.cve == cve]
        if not named:
            continue  # named only at an unstable version the release already has
        # a fix beats a low-confidence mention; then the oldest version
        suite_log, mention = min(
            named, key=lambda cm: (cm[1].confidence != "fix", _VersionOrder(cm[1].version))
        )
        version = mention.version
        if status == "fix-in-unstable" and not _newer(version, candidate):
            # the first naming entry predates the candidate on another branch: the
            # unstable version that carries it is what fixes it for the release
            version = suite_log.version
        out.append(
            ArchiveStatus(
                source=source,
                cve=cve,
                release=distro.codename,
                status=status,
                version=version,
                suite=suite_log.suite,
                line=mention.line,
                confidence=mention.confidence,
                candidate=candidate,
            )
        )
    return out


def _at_most(version: str, ceiling: str) -> str:
    return ceiling if _newer(version, ceiling) else version


class _VersionOrder:
    __slots__ = ("v",)

    def __init__(self, v: str) -> None:
        self.v = v

    def __lt__(self, other: _VersionOrder) -> bool:
        return compare_versions(self.v, other.v) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _VersionOrder) and compare_versions(self.v, other.v) == 0

    __hash__ = None  # type: ignore[assignment]


# --- the I/O half ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which source packages to read: named ones, or every source of main (``None``)."""

    names: frozenset[str] | None
    description: str

    def wants(self, source: str) -> bool:
        return self.names is None or source in self.names


@dataclass(frozen=True)
class _Job:
    """One (source, version) whose changelog is needed, and the binaries that carry it."""

    source: str
    version: str
    suites: tuple[str, ...]
    binaries: tuple[BinaryPackage, ...]  # smallest first


class _Skipped(Exception):  # noqa: N818 (a warning to return, not an error)
    """Carries a ``FeedWarning`` out of ``source_changelog`` from the feed's callables."""

    def __init__(self, warning: FeedWarning) -> None:
        super().__init__(warning.message)
        self.warning = warning


@dataclass
class Archive:
    """The configured mirror's signed suites, read for the debian-archive feed."""

    distro: Distro
    cache: Cache
    fetcher: Fetcher
    mirrors: Mirrors | Mapping[str, str]
    now: Callable[[], datetime]
    keyring: Path | None = None
    arch: str = "amd64"
    workers: int = 8
    notes: list[str] = field(default_factory=list)  # what the run had to accept, said aloud
    _releases: dict[str, VerifiedRelease] = field(default_factory=dict, repr=False)
    _sources_text: dict[str, bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def releases(self) -> dict[str, VerifiedRelease]:
        """Each suite's verified Release (fetched once per ``Archive``)."""
        if not self._releases:
            suites = archive_suites(self.distro)
            now = self.now()
            with ThreadPoolExecutor(max_workers=len(suites)) as pool:
                loaded = list(pool.map(lambda s: self._release(s, now), suites))
            self._releases = dict(zip(suites, loaded, strict=True))
        return self._releases

    def _release(self, suite: str, now: datetime) -> VerifiedRelease:
        url = suite_base_url(suite_urls(self.distro, self.mirrors), suite)
        ring = self.keyring if self.keyring is not None else Path(self.distro.keyring)

        def load(at: datetime) -> VerifiedRelease:
            return load_release(
                suite, url, cache=self.cache, fetcher=self.fetcher, keyring=ring, now=at,
                max_age=0.0,
            )  # fmt: skip

        try:
            return load(now)
        except RemoteContentError:
            if suite not in UNSTABLE_SUITES:
                raise
            expired = self._expired_at(suite, url, ring, now)
            if expired is None:
                raise
        # Unstable and experimental are evidence only (nothing is installed from them)
        # and the stable suites are held to Valid-Until: a frozen unstable can hide a fix
        # from this feed, never invent one. Read it as of its date, and say so.
        verified = load(expired - timedelta(seconds=1))
        self.notes.append(
            f"{url}/dists/{suite}: the signed Release of {verified.release.date} expired at "
            f"{expired.isoformat()}; its changelogs are read as of that date"
        )
        return verified

    def _expired_at(self, suite: str, url: str, ring: Path, now: datetime) -> datetime | None:
        """The Valid-Until of a correctly signed Release of ``suite`` that has expired."""
        source = f"{url}/dists/{suite}/InRelease"
        body = self.fetcher.fetch(source, max_bytes=64 << 20).body
        release = parse_release(
            verify_clearsigned(body, keyring=ring, source=source).text, source=source
        )
        until = release.valid_until
        if suite not in (release.codename, release.suite) or until is None or now <= until:
            return None
        return until

    def manifest(self, scope: Scope) -> FeedInput:
        """The feed input: the signed Releases and the scope (its digest says what changed)."""
        doc = {
            "feed": "debian-archive",
            "format": _CACHE_VERSION,
            "distro": self.distro.id,
            "arch": self.arch,
            "scope": sorted(scope.names) if scope.names is not None else "all",
            "suites": {
                s: {"url": v.identity.base_url, "inrelease_sha256": v.identity.inrelease_sha256}
                for s, v in self.releases().items()
            },
        }
        origin = f"debian-archive {'+'.join(self.releases())} ({scope.description})"
        return from_bytes(origin, json.dumps(doc, sort_keys=True).encode())

    def binaries(self) -> dict[str, dict[str, list[BinaryPackage]]]:
        """suite -> source -> binaries of the suite's newest version of the source."""
        releases = self.releases()
        with ThreadPoolExecutor(max_workers=len(releases)) as pool:
            tables = list(
                pool.map(
                    lambda v: load_packages_table(
                        v, "main", self.arch, cache=self.cache, fetcher=self.fetcher
                    ),
                    releases.values(),
                )
            )
        out: dict[str, dict[str, list[BinaryPackage]]] = {}
        for suite, table in zip(releases, tables, strict=True):
            by_source: dict[str, list[BinaryPackage]] = {}
            for name in table.index:
                record = table.record(name)
                if record is None:
                    continue
                pkg = package_from_record(record, suite)
                by_source.setdefault(pkg.source, []).append(pkg)
            for source, pkgs in by_source.items():
                newest = pkgs[0].source_version
                for p in pkgs[1:]:
                    if _newer(p.source_version, newest):
                        newest = p.source_version
                by_source[source] = sorted(
                    (p for p in pkgs if p.source_version == newest),
                    key=lambda p: (p.size, p.name),
                )
            out[suite] = by_source
        return out

    def changelog(self, job: _Job) -> tuple[Mention, ...] | FeedWarning:
        """The mentions of ``job``'s changelog (cached by source and version), or why not."""
        key = (
            f"{_CACHE_VERSION}-{hashlib.sha256(f'{job.source} {job.version}'.encode()).hexdigest()}"
        )
        cached = self.cache.get_derived(key)
        if cached is not None:
            try:
                return tuple(Mention(**m) for m in json.loads(bytes(cached)))
            except (ValueError, TypeError):
                self.cache.discard_derived(key)
        where = Location(f"{job.source} {job.version}", field=",".join(job.suites))
        urls = suite_urls(self.distro, self.mirrors)

        def fetch(pkg: BinaryPackage) -> Path:
            try:
                (path,) = fetch_debs([pkg], base_urls=urls, cache=self.cache, fetcher=self.fetcher)
            except IntegrityError as exc:
                message = f"{pkg.filename} fails its signed index: {exc.message}"
                raise _Skipped(FeedWarning(message, where)) from exc
            return path

        def packaging(below: int) -> bytes | None:
            # a big binary next (openjdk's headless JRE is 42 MB): the source's
            # debian.tar, when smaller, carries the same changelog
            text = self._debian_tar_changelog(job, below=below)
            if isinstance(text, FeedWarning):
                raise _Skipped(text)
            return text

        try:
            found = source_changelog(
                job.binaries, fetch, max_tries=MAX_TRIES, packaging=packaging, big=BIG_DEB
            )
        except _Skipped as skipped:
            return skipped.warning
        except DebFormatError as exc:  # names the .deb: "<file>: not a readable .deb: ..."
            return FeedWarning(exc.message, where)
        if isinstance(found, ChangelogNotFound):
            return FeedWarning(
                f"no changelog.Debian.gz in {', '.join(found.tried) or 'any binary'} "
                "(their doc directories point elsewhere)",
                where,
            )
        artifact = f"{found.binary.filename}:{found.path}" if found.binary else found.path
        return self._mentions(job, key, found.text, artifact, where)

    def _mentions(
        self, job: _Job, key: str, text: bytes, artifact: str, where: Location
    ) -> tuple[Mention, ...] | FeedWarning:
        """Parse one changelog of ``job``; cache the mentions under ``key``."""
        try:
            name, mentions = mentions_from_changelog(
                text, f"{job.source} {job.version} ({artifact})"
            )
        except FeedFormatError as exc:
            return FeedWarning(exc.message, where)
        if name != job.source:
            return FeedWarning(
                f"{artifact}: the changelog is of {name!r}, not of {job.source!r}", where
            )
        self.cache.put_derived(key, json.dumps([vars(m) for m in mentions]).encode())
        return tuple(mentions)

    def _sources(self, suite: str, name: str) -> list[SourcePackage]:
        """The stanzas of source ``name`` in ``suite``'s signed Sources index."""
        with self._lock:
            plain = self._sources_text.get(suite)
            if plain is None:
                release = self.releases()[suite]
                path = "main/source/Sources.xz"
                plain = fetch_index(release, path, cache=self.cache, fetcher=self.fetcher)
                self._sources_text[suite] = plain
        identity = self.releases()[suite].identity
        source = f"{identity.base_url}/dists/{suite}/main/source/Sources.xz"
        return parse_sources(plain, suite=suite, source=source, names=[name])

    def _debian_tar_changelog(self, job: _Job, *, below: int) -> bytes | FeedWarning | None:
        """``debian/changelog`` of the job's ``.debian.tar.*``, if it has one under ``below``
        bytes (a native source has none); the file is checked against the signed index."""
        suite = job.suites[0]
        found = [p for p in self._sources(suite, job.source) if p.version == job.version]
        tars = [f for p in found for f in p.files if _DEBIAN_TAR_RE.search(f.name)]
        if not tars or tars[0].size >= below:
            return None
        tar, package = tars[0], found[0]
        where = Location(f"{job.source} {job.version}", field=suite)
        base = suite_base_url(suite_urls(self.distro, self.mirrors), suite)
        url = f"{base}/{package.directory}/{tar.name}"
        try:
            data = self.cache.read_blob(tar.sha256, size=tar.size)
            if data is None:
                data = fetch_promised(self.fetcher, url, size=tar.size, source=url)
                self.cache.put_blob(data, sha256=tar.sha256, size=tar.size, source=url)
        except IntegrityError as exc:
            return FeedWarning(f"{tar.name} fails its signed index: {exc.message}", where)
        except HttpStatusError as exc:
            if exc.status not in NOT_FOUND:
                raise
            return None  # mirrors of binaries only lack source files: read the binary
        try:
            return _changelog_in_tar(data, tar.name)
        except FeedFormatError as exc:
            return FeedWarning(exc.message, where)


def _changelog_in_tar(data: bytes, display: str) -> bytes | None:
    """The ``debian/changelog`` member of a ``.debian.tar.*`` (``None`` if absent)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as archive:
            for number, member in enumerate(archive):
                if number > _MAX_TAR_MEMBERS:
                    raise FeedFormatError(
                        f"more than {_MAX_TAR_MEMBERS} members", Location(display)
                    )
                if member.name.removeprefix("./") != "debian/changelog" or not member.isfile():
                    continue
                if member.size > MAX_CHANGELOG_BYTES:
                    raise FeedFormatError(
                        f"debian/changelog of {member.size} bytes, more than "
                        f"{MAX_CHANGELOG_BYTES}: not read",
                        Location(display),
                    )
                fh = archive.extractfile(member)
                return fh.read() if fh is not None else None
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
        raise FeedFormatError(f"not a readable tar archive: {exc}", Location(display)) from exc
    return None


class DebianArchiveFeed(Feed):
    """CVE fixes named in the changelogs of the signed archive, per suite (see module)."""

    name: ClassVar[str] = "debian-archive"
    mode: ClassVar[ImportMode] = "upsert"  # per source: a failed source keeps its last rows

    def __init__(self, archive: Archive | None = None, scope: Scope | None = None) -> None:
        self.archive = archive
        self.scope = scope

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        if self.archive is None or self.scope is None:
            raise InputError(
                "the debian-archive feed reads the configured Debian mirror, not a file",
                hint="run `kiln db update --source debian-archive` without --from",
            )
        archive, scope = self.archive, self.scope
        by_suite = archive.binaries()
        for note in archive.notes:
            yield FeedWarning(note, Location("debian-archive", field="suites"))
        wanted = sorted({s for m in by_suite.values() for s in m if scope.wants(s)})
        for name in sorted((scope.names or frozenset()) - set(wanted)):
            yield FeedWarning(
                "not a source package in any suite read", Location(name, field="source")
            )
        jobs: dict[tuple[str, str], _Job] = {}
        for suite, sources in by_suite.items():
            for src in wanted:
                pkgs = sources.get(src)
                if not pkgs:
                    continue
                key = (src, pkgs[0].source_version)
                job = jobs.get(key)
                if job is None:
                    jobs[key] = _Job(src, key[1], (suite,), tuple(pkgs))
                else:  # same version in another suite: one changelog, more binaries
                    more = tuple(p for p in pkgs if p.name not in {b.name for b in job.binaries})
                    jobs[key] = _Job(src, key[1], (*job.suites, suite), job.binaries + more)
        with ThreadPoolExecutor(max_workers=max(1, archive.workers)) as pool:
            results = dict(zip(jobs, pool.map(archive.changelog, jobs.values()), strict=True))
        for src in wanted:
            logs: list[SuiteChangelog] = []
            failed: list[FeedWarning] = []
            for suite in by_suite:
                pkgs = by_suite[suite].get(src)
                if not pkgs:
                    continue
                result = results[(src, pkgs[0].source_version)]
                if isinstance(result, FeedWarning):
                    failed.append(result)
                else:
                    logs.append(SuiteChangelog(suite, pkgs[0].source_version, result))
            if failed:
                # the database keeps what it last knew about this source
                yield from dict.fromkeys(failed)
                continue
            yield from derive(src, logs, distro=archive.distro)
