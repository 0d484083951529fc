"""Backport a CVE fix from Debian unstable: find the patch, make a recipe, build, publish, rebuild.

Issue #16, step 3b of the remediation loop. Two halves:

``find_unstable_fix(source, cve)``
    Reads unstable's (``sid``, then ``experimental``) source package through the signed
    path (the suites' InRelease verified with gpgv by ``kiln.vuln.feeds.debian_archive``'s
    ``Archive``, which reads an expired unstable Release as of its date and says so;
    ``Sources.xz`` checked against it; the ``.debian.tar.*`` checked against its index
    entry) and reads that tarball in memory: only regular files, no ``..`` or absolute
    names, bounded member count and sizes; symlinks are never followed. It finds the
    changelog entry naming the CVE (the ``debian-archive`` feed's classifier, so a
    "does not affect" mention is no fix) and the ``debian/patches`` of the series that
    name the CVE (file name, DEP-3 header or git ``Subject``, or named by that entry).
    When unstable moved to a new upstream version with no such patch, the result is the
    ``upstream`` case: the research agent (#17) finds the upstream commit. ``None`` when
    unstable does not fix the CVE or the release already names it in its own changelog.

``backport_from_unstable(fix, ...)`` / ``backport_patch(...)``
    The release's source at the given version is fetched (verified) and unpacked with
    ``dpkg-source`` in the sandbox; each patch must apply with ``patch -F 0`` (rejected
    hunks are reported and nothing is written). A recipe (``recipes/<source>.yaml`` with
    the patch under ``recipes/patches/<source>/``, DEP-3 header with kiln's ``Origin``
    note and ``Last-Update``) is staged under the work directory, built by
    ``kiln.pipeline.source.SourceBuilder`` in the sandbox *with the package's own test
    suite* (no ``nocheck``), published into a kiln apt repository, and only then copied
    into the catalog. With ``image``, the image is built before (its current lock) and
    after (its spec with ``repositories: [kiln]``, relocked with kiln's repository
    overlaid), its tests run, and both are scanned: the rebuilt image's dpkg record of
    the package must carry ``Kiln-Fixes`` naming the CVE, and kiln's scan (with the
    image's own ``Kiln-Fixes`` as ``fixed`` VEX statements) must no longer report it.

Both halves are synchronous and keep no global state: the factory runs them in Temporal
activities, one thread each. Long phases go through ``progress`` (``kiln.progress``);
a ``progress`` whose ``phase`` or ``update`` raises cancels the work between phases.
Everything written goes under ``work`` except the recipe files installed into
``catalog_root`` at the very end and kiln's cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import email.parser
import fcntl
import hashlib
import io
import json
import lzma
import re
import shutil
import subprocess
import tarfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, TypedDict, Unpack

import yaml
from debian.changelog import Changelog

from kiln.aptrepo import ensure_signing_key, publish
from kiln.debian.cache import Cache, default_cache_root
from kiln.debian.client import NOT_FOUND, fetch_index, fetch_promised
from kiln.debian.deb import ChangelogNotFound, source_changelog
from kiln.debian.distro import DISTROS, Distro
from kiln.debian.model import BinaryPackage
from kiln.debian.source_index import SourceFile, SourcePackage, parse_sources
from kiln.debian.version import compare_versions, parse_version
from kiln.epoch import source_date_epoch
from kiln.errors import InputError, KilnError, Location, PolicyError, RemoteContentError
from kiln.fileio import atomic_write, sha256_file
from kiln.forge.evidence import CheckResult, CveRow, Evidence, PackageChange, PatchOrigin
from kiln.net import Fetcher, HttpStatusError
from kiln.pipeline.archive import KILN_SUITE, ArchiveAccess, KilnAptRepo
from kiln.pipeline.build import BuildOptions, build_spec
from kiln.pipeline.imagetest import check_layout
from kiln.pipeline.packagecache import PackageBuildCache, StagedFiles, build_key
from kiln.pipeline.scan import scan_target
from kiln.pipeline.source import SourceBuilder
from kiln.progress import NO_PROGRESS, Phase, Progress
from kiln.recipes.build import BuildOutput, unpack_source
from kiln.recipes.load import load_recipe
from kiln.recipes.model import Recipe, RecipeTest
from kiln.resolve.lockfile import read_lock
from kiln.sandbox.unpack import host_arch
from kiln.sbom.read import read_sbom_input
from kiln.spec.load import load_spec
from kiln.text import plain_line
from kiln.vuln.db.scan_source import open_for_scan
from kiln.vuln.feeds.changelog_mentions import Mention, mentions_from_changelog
from kiln.vuln.feeds.debian_archive import UNSTABLE_SUITES, Archive, suite_urls
from kiln.vuln.feeds.interface import FeedFormatError
from kiln.vuln.model import Finding
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import write_openvex

# -- bounds for what unstable's debian tarball may cost ---------------------------------
MAX_DEBIAN_TAR = 64 << 20  # compressed, as the signed index promises it
MAX_UNPACKED = 256 << 20  # the members kept (changelog, patches), uncompressed
MAX_SCANNED = 2 << 30  # every member's declared size, read past or not
MAX_MEMBER = 16 << 20  # one file (a changelog, a patch)
MAX_MEMBERS = 20_000
MAX_PATCH = 8 << 20  # the recipe loader's own bound (kiln.recipes.load)
MAX_BINARIES_TRIED = 4  # binaries read for a changelog when the packaging tarball is missing

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_PATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.(?:patch|diff)$")
_DEBIAN_TAR = re.compile(r"\.debian\.tar\.(?:xz|gz|bz2)$")
_DIFF_START = ("--- ", "diff ", "Index: ", "===")
_PATCH_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/-]*\.(?:patch|diff)\b")
_TOP_ITEM = re.compile(r"^ {2}[*+-] |^ {2}\[ ")
_CLOSES = re.compile(r"#(\d{4,8})")

_REJECT_LINE = r"FAILED|can't find file|Reversed|malformed|Only garbage|No file to patch"

FixKind = Literal["patch", "upstream", "unlocated"]


# ------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class UnstablePatch:
    """One patch of unstable's ``debian/patches`` that carries the fix, as unstable ships it."""

    name: str  # path under debian/patches (as the series names it)
    text: bytes
    sha256: str
    headers: tuple[tuple[str, str], ...]  # DEP-3 fields, or a git patch's From/Subject/Date
    why: str  # how it was recognised: "file name", "header", "changelog entry"

    @property
    def description(self) -> str:
        """The patch's one-line summary (Description, Subject without ``[PATCH]``)."""
        fields = {k.lower(): v for k, v in self.headers}
        text = fields.get("description") or fields.get("subject") or ""
        text = re.sub(r"^\[PATCH[^\]]*\]\s*", "", " ".join(text.split()))
        return text or f"fix from Debian's {self.name}"


@dataclass(frozen=True)
class UnstableFix:
    """Where Debian unstable fixes ``cve`` in ``source``, and what the release has instead.

    ``kind``: ``patch`` (``patches`` carry it), ``upstream`` (unstable moved to upstream
    ``upstream_version`` and no patch names the CVE: the research agent, issue #17,
    finds the upstream commit) or ``unlocated`` (same upstream version, but no patch
    names the CVE; the entry is the only lead). ``note`` says which, in one sentence.
    """

    source: str
    cve: str
    release: str  # trixie
    release_version: str  # the release's newest version of the source (its candidate)
    suite: str  # sid | experimental
    unstable_version: str  # the suite's version whose tarball was read
    fixed_version: str  # the first unstable version whose changelog names the CVE
    kind: FixKind
    patches: tuple[UnstablePatch, ...]
    changelog_line: str  # the changelog item naming the CVE
    changelog_entry: str  # the whole entry of ``fixed_version``
    bugs: tuple[str, ...]  # Debian bug numbers the entry closes
    upstream_version: str  # of ``unstable_version``
    source_files: Mapping[str, str] = field(default_factory=dict)  # name -> sha256 (signed)
    note: str = ""

    @property
    def origin(self) -> str:
        """Where the fix comes from, for a PR's evidence."""
        names = ", ".join(p.name for p in self.patches) or "no separate patch"
        return f"Debian {self.suite} {self.source} {self.unstable_version}: {names}"


@dataclass(frozen=True)
class PatchFile:
    """A patch to add to a recipe: file name, the patch as received, DEP-3 fields to lead it.

    ``text`` is kept whole (its own header included) after kiln's DEP-3 block, so the
    recipe's patch says both what kiln asserts and what the original said.
    """

    name: str
    text: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class BuiltPackage:
    """A .deb the backport built (and published)."""

    name: str
    version: str
    arch: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class PackageTests:
    """The package's own test suite as the build log shows it (a failure fails the build),
    and the recipe's tests run on the built packages (``kiln.recipes.check``)."""

    ran: bool  # dh_auto_test ran a test suite (it printed something)
    summary: tuple[str, ...]  # the runners' summary lines (ctest, automake, meson, ...)
    log: Path
    lines: int = 0  # output lines of the test step
    recipe_tests: tuple[tuple[str, bool, str], ...] = ()  # (name, passed, reason)


@dataclass(frozen=True)
class ScanCounts:
    """One scan of one image: active findings per severity, and whether the CVE is among them."""

    layout: Path
    counts: Mapping[str, int]
    total: int
    cve_reported: bool
    findings: tuple[Finding, ...] = ()  # the active ones


@dataclass(frozen=True)
class ImageOutcome:
    """The image rebuilt from kiln's repository: layouts, digests, tests, scans."""

    name: str
    variants: tuple[str, ...]
    layouts: Mapping[str, Path]  # variant label -> layout
    digests: Mapping[str, str]  # variant label -> index digest
    tests_passed: int
    tests_failed: int
    before: tuple[ScanCounts, ...]
    after: tuple[ScanCounts, ...]
    kiln_fixes: Mapping[str, str]  # binary package -> its Kiln-Fixes field in the image
    notes: tuple[str, ...] = ()  # what could not be done (e.g. no "before" build)
    #: (package, version before, version after) for this machine's architecture, every
    #: package the relock changed in the rebuilt variants (None: absent on that side)
    package_changes: tuple[tuple[str, str | None, str | None], ...] = ()
    #: what the new lock still takes from Debian: "<variant>/<arch>: <package> <version>"
    #: (kiln builds this machine's architecture only)
    not_rebuilt: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackportResult:
    """What a backport produced: the PR's files and the evidence a reviewer reads."""

    source: str
    base_version: str  # the release's version it starts from
    kiln_version: str  # <base>+kiln<N>
    cves: tuple[str, ...]
    files: Mapping[str, bytes]  # path relative to the catalog root -> content (the PR)
    patches: Mapping[str, bytes]  # patch file name -> content, as written
    packages: tuple[BuiltPackage, ...]
    package_tests: PackageTests
    build_seconds: float
    apt_repository: Path  # kiln's apt repository the .debs were published to
    origin: tuple[tuple[str, str], ...]  # DEP-3 fields of the patch(es), for the PR
    patch_origins: Mapping[str, tuple[tuple[str, str], ...]]  # per patch file name
    provenance: Path  # the build's SLSA provenance statement (beside the .debs)
    changelog_line: str  # "" for a patch that did not come from a Debian changelog
    image: ImageOutcome | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    #: the packages came from a ``PackageBuildCache`` entry another backport built
    build_reused: bool = False


class _BeatPhase:
    def __init__(self, beat: Callable[[str], None], text: str) -> None:
        self.beat, self.text = beat, text

    def update(self, detail: str) -> None:
        """Pass ``detail`` on as ``<phase>: <detail>``."""
        self.beat(f"{self.text}: {detail}")


class BeatProgress:
    """A ``Progress`` that passes every phase and update to ``beat`` (one line each).

    The factory's activity heartbeat is such a callable; when it raises (the activity was
    cancelled), the backport stops at that point.
    """

    def __init__(self, beat: Callable[[str], None]) -> None:
        self.beat = beat

    @contextlib.contextmanager
    def phase(self, text: str) -> Iterator[Phase]:
        """Announce ``text``, then its updates, then that it is done."""
        self.beat(text)
        yield _BeatPhase(self.beat, text)
        self.beat(f"{text}: done")


class MirrorMissingError(RemoteContentError):
    """The mirror lacks a file its signed index lists."""


class PatchRejectedError(PolicyError):
    """A patch does not apply to the release's source (the hunks are in ``details``)."""


# ------------------------------------------------------------ unstable's debian tarball


@dataclass(frozen=True)
class DebianTree:
    """The regular files of a ``.debian.tar.*`` kiln reads (changelog, patches, format)."""

    files: Mapping[str, bytes]  # member path without ./ -> content
    refused: tuple[str, ...]  # links and special files under debian/ (never followed)
    display: str

    def text(self, name: str) -> bytes | None:
        """The content of member ``name`` (``debian/changelog``), if it was kept."""
        return self.files.get(name)


def _wanted(name: str) -> bool:
    return name in ("debian/changelog", "debian/source/format") or name.startswith(
        "debian/patches/"
    )


def read_debian_tar(
    data: bytes, *, display: str, wanted: Callable[[str], bool] | None = None
) -> DebianTree:
    """The files kiln reads of a Debian packaging tarball, in memory and bounded.

    Kept: ``debian/changelog``, ``debian/source/format`` and ``debian/patches/*`` (or the
    member names ``wanted`` accepts: the research agent's discovery reads
    ``debian/upstream/metadata`` and ``debian/copyright``), when regular files. Refused
    (``RemoteContentError`` naming ``display`` and the member):
    absolute names, ``..`` components, more than ``MAX_MEMBERS`` members, members that
    declare more than ``MAX_SCANNED`` bytes in all, a changelog over ``MAX_MEMBER``
    bytes, more than ``MAX_UNPACKED`` bytes kept. Links, devices and patches over
    ``MAX_MEMBER`` bytes are listed in ``refused`` and never read or followed.
    """
    files: dict[str, bytes] = {}
    refused: list[str] = []
    kept = scanned = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as archive:
            for number, member in enumerate(archive, start=1):
                if number > MAX_MEMBERS:
                    raise RemoteContentError(f"{display}: more than {MAX_MEMBERS} members")
                name = member.name.removeprefix("./")
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts:
                    raise RemoteContentError(
                        f"{display}: member {member.name!r} leads outside the tree",
                        hint="a source package never has such names; this one is hostile",
                    )
                scanned += max(member.size, 0)
                if scanned > MAX_SCANNED:
                    raise RemoteContentError(
                        f"{display}: its members declare more than {MAX_SCANNED} bytes: not read"
                    )
                if member.isdir() or not (wanted or _wanted)(name):
                    continue
                if not member.isfile():
                    refused.append(name)
                    continue
                if member.size > MAX_MEMBER:
                    if name.startswith("debian/patches/"):
                        refused.append(name)  # too big to be a CVE fix kiln takes
                        continue
                    raise RemoteContentError(
                        f"{display}: {name} is {member.size} bytes, more than {MAX_MEMBER}"
                    )
                kept += member.size
                if kept > MAX_UNPACKED:
                    raise RemoteContentError(
                        f"{display}: more than {MAX_UNPACKED} bytes to read: not read"
                    )
                handle = archive.extractfile(member)
                files[name] = handle.read() if handle is not None else b""
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as exc:
        raise RemoteContentError(f"{display}: not a readable tar archive: {exc}") from exc
    return DebianTree(files, tuple(refused), display)


def patch_headers(text: bytes) -> tuple[tuple[str, str], ...]:
    """The header fields of a patch: DEP-3 fields, or a git format-patch's mail headers."""
    head: list[str] = []
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith(_DIFF_START) or line.strip() == "---":
            break
        head.append(line)
    if head and head[0].startswith("From ") and not head[0].startswith("From: "):
        head = head[1:]  # the mbox separator of git format-patch
    block: list[str] = []
    for line in head:
        if not line.strip():
            if block:
                break
            continue
        block.append(line)
    if not block or not re.match(r"^[A-Za-z][A-Za-z0-9-]*:", block[0]):
        return ()
    message = email.parser.HeaderParser().parsestr("\n".join(block) + "\n\n")
    return tuple((k, " ".join(str(v).split())) for k, v in message.items())


def _header_text(text: bytes) -> str:
    out = []
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith(_DIFF_START):
            break
        out.append(line)
    return "\n".join(out)


def _series(tree: DebianTree) -> list[str]:
    raw = tree.text("debian/patches/series")
    if raw is None:
        return []
    names = []
    for line in raw.decode("utf-8", "replace").splitlines():
        entry = line.split("#", 1)[0].split()
        if entry:
            names.append(entry[0])
    return names


def _top_items(block_text: str) -> list[str]:
    """A changelog entry's top-level items, each with its sub-items."""
    items: list[list[str]] = []
    for line in block_text.splitlines():
        if _TOP_ITEM.match(line) or (not items and line.strip()):
            items.append([line.strip()])
        elif items and line.strip():
            items[-1].append(line.strip())
    return [" ".join(i) for i in items]


@dataclass(frozen=True)
class _Entry:
    version: str
    line: str
    text: str  # the whole entry
    item: str  # the top-level item naming the CVE, with its sub-items


def _changelog_entry(changelog: bytes, cve: str, *, display: str) -> _Entry | None:
    """The first changelog entry naming ``cve`` as a fix (None: unnamed, or only low)."""
    mention = next((m for m in _changelog_fixes(changelog, display) if m.cve == cve), None)
    if mention is None:
        return None
    parsed = Changelog(changelog.decode("utf-8", "replace"), strict=False)
    for block in parsed:
        if str(block.version) == mention.version:
            text = str(block)
            body = "\n".join(block.changes())
            item = next((i for i in _top_items(body) if cve in i), mention.line)
            return _Entry(mention.version, mention.line, text, item)
    return _Entry(mention.version, mention.line, mention.line, mention.line)


def _upstream(version: str) -> str:
    plain = version.split(":", 1)[-1]
    return plain.rsplit("-", 1)[0] if "-" in plain else plain


def locate_fix(
    tree: DebianTree,
    cve: str,
    *,
    source: str,
    suite: str,
    version: str,
    release: str,
    release_version: str,
    release_changelog: bytes | None = None,
    source_files: Mapping[str, str] | None = None,
) -> UnstableFix | None:
    """Find ``cve``'s fix in unstable's packaging ``tree`` (pure; see the module).

    ``None`` when the tree's changelog does not name the CVE as a fix at a version newer
    than ``release_version``, or when ``release_changelog`` (the release's own) names it.
    """
    changelog = tree.text("debian/changelog")
    if changelog is None:
        raise RemoteContentError(f"{tree.display}: no debian/changelog (or not a regular file)")
    entry = _changelog_entry(changelog, cve, display=f"{tree.display}: debian/changelog")
    if entry is None or compare_versions(entry.version, release_version) <= 0:
        return None
    if release_changelog is not None:
        ours = _changelog_entry(release_changelog, cve, display=f"{source} {release_version}")
        if ours is not None:
            return None
    series = _series(tree)
    found: list[UnstablePatch] = []
    named_in_entry = {PurePosixPath(m).name for m in _PATCH_REF.findall(entry.item)}
    for name in series:
        path = f"debian/patches/{name}"
        if ".." in PurePosixPath(name).parts or name.startswith("/"):
            raise RemoteContentError(f"{tree.display}: series names {name!r}, outside the tree")
        text = tree.text(path)
        if text is None:
            continue  # missing or a link: nothing kiln would read
        base = PurePosixPath(name).name
        why = ""
        if cve.lower() in base.lower():
            why = "file name"
        elif cve in _header_text(text):
            why = "header"
        elif base in named_in_entry:
            why = "changelog entry"
        if why:
            digest = hashlib.sha256(text).hexdigest()
            found.append(UnstablePatch(name, text, digest, patch_headers(text), why))
    if any(p.why != "changelog entry" for p in found):
        found = [p for p in found if p.why != "changelog entry"]
    upstream = _upstream(version)
    kind: FixKind = "patch"
    note = f"{len(found)} patch(es) of {suite}'s debian/patches carry the fix"
    if not found:
        if _upstream(entry.version) != _upstream(release_version):
            kind = "upstream"
            note = (
                f"{suite} fixed {cve} by moving to upstream {_upstream(entry.version)} "
                f"({release} has {_upstream(release_version)}); no debian/patches names it: "
                "the research agent (issue #17) finds the upstream commit"
            )
        else:
            kind = "unlocated"
            note = (
                f"{suite}'s changelog names {cve} at {entry.version} (same upstream as "
                f"{release}), but no patch of the series names it: the entry is the only lead"
            )
    return UnstableFix(
        source=source,
        cve=cve,
        release=release,
        release_version=release_version,
        suite=suite,
        unstable_version=version,
        fixed_version=entry.version,
        kind=kind,
        patches=tuple(found),
        changelog_line=entry.line,
        changelog_entry=entry.text,
        bugs=tuple(dict.fromkeys(_CLOSES.findall(entry.item))),
        upstream_version=upstream,
        source_files=dict(source_files or {}),
        note=note,
    )


# --------------------------------------------------------------- the signed-path I/O


def _check_names(source: str, cves: Sequence[str]) -> None:
    if not _SOURCE.match(source) or len(source) > 128:
        raise InputError(f"{source!r} is not a Debian source package name")
    bad = [c for c in cves if not _CVE.match(c)]
    if bad or not cves:
        raise InputError(f"{', '.join(bad) or 'no CVE'}: not a CVE id (CVE-YYYY-NNNN)")


def _distro_of(release: str) -> Distro:
    for distro in DISTROS.values():
        if release in (distro.codename, distro.id):
            return distro
    known = ", ".join(d.codename for d in DISTROS.values())
    raise InputError(f"unknown release {release!r} (kiln builds on {known})")


def _fetch_verified(
    item: SourceFile, url: str, *, cache: Cache, fetcher: Fetcher, what: str
) -> bytes:
    """A file of a source package, checked against its signed index entry (cached)."""
    if item.size > MAX_DEBIAN_TAR:
        raise RemoteContentError(
            f"{what}: {item.name} is {item.size} bytes, more than {MAX_DEBIAN_TAR}: not read"
        )
    data = cache.read_blob(item.sha256, size=item.size)
    if data is None:
        data = fetch_promised(fetcher, url, size=item.size, source=f"{url} ({what})")
        cache.put_blob(data, sha256=item.sha256, size=item.size, source=url)
    return data


@dataclass
class _Suites:
    """The signed source indexes of the release and unstable, read through one ``Archive``."""

    archive: ArchiveAccess
    distro: Distro

    def __post_init__(self) -> None:
        repo = self.archive
        self.signed = Archive(
            self.distro, repo.cache, repo.fetcher, repo.mirrors, repo.clock, keyring=repo.keyring
        )
        self.urls = suite_urls(self.distro, repo.mirrors)

    def versions(self, suite: str, name: str) -> list[SourcePackage]:
        """Every version of source ``name`` in ``suite``'s signed Sources, newest first."""
        release = self.signed.releases()[suite]
        plain = fetch_index(
            release, "main/source/Sources.xz", cache=self.archive.cache,
            fetcher=self.archive.fetcher,
        )  # fmt: skip
        where = f"{self.urls[suite]}/dists/{suite}/main/source/Sources.xz"
        found = parse_sources(plain, suite=suite, source=where, names=[name])
        found.sort(key=lambda p: parse_version(p.version), reverse=True)
        return found

    def debian_tree(self, package: SourcePackage) -> DebianTree:
        """``package``'s ``.debian.tar``, checked against its index entry, read bounded."""
        what = f"{package.name} {package.version} ({package.suite})"
        tars = [f for f in package.files if _DEBIAN_TAR.search(f.name)]
        if not tars:
            raise RemoteContentError(
                f"{what}: no .debian.tar in its Sources entry (format {package.format})",
                hint="kiln backports from '3.0 (quilt)' sources only",
            )
        url = f"{self.urls[package.suite]}/{package.directory}/{tars[0].name}"
        try:
            data = _fetch_verified(
                tars[0], url, cache=self.archive.cache, fetcher=self.archive.fetcher,
                what=what,
            )  # fmt: skip
        except HttpStatusError as exc:
            if exc.status not in NOT_FOUND:
                raise
            raise MirrorMissingError(
                f"{what}: {url} is missing from the mirror (its signed index lists it)",
                hint="the mirror lacks source files; use another mirror (kiln config "
                "mirrors.debian) or wait for it to sync",
            ) from exc
        return read_debian_tar(data, display=f"{tars[0].name} ({package.suite})")


def find_unstable_fix(
    source: str,
    cve: str,
    *,
    release: str = "trixie",
    archive: ArchiveAccess | None = None,
    progress: Progress = NO_PROGRESS,
) -> UnstableFix | None:
    """Where Debian unstable (``sid``, then ``experimental``) fixes ``cve`` in ``source``.

    Reads the signed Sources indexes of the release (its newest version is the
    candidate) and of unstable, then the ``.debian.tar`` of unstable's newest version
    and of the release's candidate (each checked against its index entry); see
    ``locate_fix``. ``archive`` defaults to ``ArchiveAccess.from_environment()``.
    """
    _check_names(source, [cve])
    distro = _distro_of(release)
    repo = archive if archive is not None else ArchiveAccess.from_environment()
    with progress.phase(f"reading the signed source indexes for {source} ({release}, unstable)"):
        suites = _Suites(repo, distro)
        ours = [p for s in distro.suites for p in suites.versions(s, source)]
        if not ours:
            raise InputError(f"{source} is not a source package of {release}")
        ours.sort(key=lambda p: parse_version(p.version), reverse=True)
        candidate = ours[0]
    missing: list[MirrorMissingError] = []
    read_versions: list[str] = []
    release_log: bytes | None = None
    for suite in UNSTABLE_SUITES:
        newer = [
            p
            for p in suites.versions(suite, source)
            if compare_versions(p.version, candidate.version) > 0
        ]
        # newest first; a version whose packaging the mirror lacks gives way to the next
        # (an unstable index may list a few versions; a later one carries every entry)
        for package in newer:
            with progress.phase(f"reading {source} {package.version} ({suite})"):
                try:
                    tree = suites.debian_tree(package)
                except MirrorMissingError as exc:
                    missing.append(exc)
                    continue
                read_versions.append(f"{package.version} ({suite})")
                if release_log is None:
                    release_log = _release_changelog(suites, candidate) or b""
                fix = locate_fix(
                    tree,
                    cve,
                    source=source,
                    suite=suite,
                    version=package.version,
                    release=distro.codename,
                    release_version=candidate.version,
                    release_changelog=release_log or None,
                    source_files={f.name: f.sha256 for f in package.files},
                )
            if fix is not None:
                return fix
            break  # the newest readable version does not name it: older ones do not either
    if missing:
        # a version the mirror lacks may be the one that fixes it: no verdict
        read = f"; {', '.join(read_versions)} read and name no fix" if read_versions else ""
        raise MirrorMissingError(
            missing[0].message,
            hint=f"{len(missing)} unstable version(s) of {source} newer than "
            f"{candidate.version} could not be read{read}: {missing[0].hint}",
        )
    return None


def _release_changelog(suites: _Suites, package: SourcePackage) -> bytes | None:
    """The release's own changelog, when its mirror has the packaging tarball.

    Without it (a native source, a mirror lacking source files) the version order alone
    decides: unstable's naming entry must be newer than the release's candidate.
    """
    if not any(_DEBIAN_TAR.search(f.name) for f in package.files):
        return None
    try:
        return suites.debian_tree(package).text("debian/changelog")
    except MirrorMissingError:
        return None


@dataclass(frozen=True)
class ReleaseStatus:
    """The release's newest version of a source and whether its packaging fixes a CVE.

    ``fixed_line`` is the release's changelog item naming the CVE as fixed (empty: not
    named); ``patches`` are its ``debian/patches`` whose file name or header names it.
    ``evidence`` says what was read: the packaging tarball, or (when the mirror lacks
    it) the ``changelog.Debian.gz`` of one of that version's binary packages, fetched
    through the signed Packages path; then ``patches_known`` is False (the patches were
    not seen) and ``fetchable`` names the newest version whose ``.dsc`` and packaging
    tarball the mirror has (None: none has). ``fixes`` is every CVE the changelog names
    as fixed, each at the first version naming it.
    """

    source: str
    cve: str
    release: str
    version: str
    fixed_line: str
    patches: tuple[str, ...]
    evidence: str = ""
    patches_known: bool = True
    fetchable: str | None = None
    fixes: tuple[Mention, ...] = ()

    @property
    def fixed(self) -> bool:
        """The release already carries a fix (changelog entry or a patch naming the CVE)."""
        return bool(self.fixed_line or self.patches)

    def fixed_after(self, version: str) -> tuple[Mention, ...]:
        """The CVEs the newer versions (after ``version``, up to ``self.version``) fix."""
        return tuple(
            m
            for m in self.fixes
            if compare_versions(m.version, version) > 0
            and compare_versions(m.version, self.version) <= 0
        )


def _changelog_fixes(changelog: bytes, display: str) -> tuple[Mention, ...]:
    try:
        _, mentions = mentions_from_changelog(changelog, display)
    except FeedFormatError as exc:
        raise RemoteContentError(exc.message, exc.location) from exc
    return tuple(m for m in mentions if m.confidence == "fix")


def _binary_changelog(suites: _Suites, package: SourcePackage, arch: str) -> tuple[bytes, str]:
    """The changelog one of ``package``'s binaries ships, read from its verified .deb.

    The binaries of exactly that source version in the release's signed Packages
    (``ArchiveAccess.snapshot``), smallest first; a binary whose doc directory points
    at another's has no changelog of its own, and the binary it points to is tried next
    (at most ``MAX_BINARIES_TRIED`` in all; ``source_changelog``). Returns the text and
    where it was read.
    """
    universe = suites.archive.snapshot(suites.distro, [arch]).universe(arch)
    binaries = sorted(
        (
            b
            for name in package.binaries
            if (b := universe.get(name)) is not None
            and b.source == package.name
            and b.source_version == package.version
        ),
        key=lambda b: (b.size, b.name),
    )

    def fetch(binary: BinaryPackage) -> Path:
        (path,) = suites.archive.fetch(suites.distro, [binary])
        return path

    # a .deb that is not readable raises DebFormatError, a RemoteContentError naming it
    found = source_changelog(binaries, fetch, max_tries=MAX_BINARIES_TRIED)
    if isinstance(found, ChangelogNotFound):
        what = f"{package.name} {package.version} ({suites.distro.codename}, {arch})"
        raise MirrorMissingError(
            f"{what}: no binary package of this version ships a Debian changelog "
            f"(tried: {', '.join(found.tried) or 'none in the signed Packages index'})"
        )
    b = found.binary
    of = f"binary {b.name} {b.version} ({b.suite})" if b else "the packaging tarball"
    return found.text, f"{found.path} of {of}"


def _on_mirror(suites: _Suites, package: SourcePackage) -> bool:
    """Whether the mirror has ``package``'s ``.dsc`` and packaging tarball (both checked
    against the signed index; the upstream tarballs are not fetched)."""
    dsc = package.dsc
    if dsc is None:
        return False
    url = f"{suites.urls[package.suite]}/{package.directory}/{dsc.name}"
    what = f"{package.name} {package.version} ({package.suite})"
    try:
        suites.debian_tree(package)
        _fetch_verified(
            dsc, url, cache=suites.archive.cache, fetcher=suites.archive.fetcher, what=what
        )
    except MirrorMissingError:
        return False
    except HttpStatusError as exc:
        if exc.status not in NOT_FOUND:
            raise
        return False
    return True


def release_status(
    source: str,
    cve: str,
    *,
    release: str = "trixie",
    archive: ArchiveAccess | None = None,
    arch: str | None = None,
) -> ReleaseStatus:
    """Does the release's newest ``source`` already fix ``cve``? (signed Sources, packaging).

    The research agent asks before a backport: a CVE the release's changelog or patches
    name is Debian's to carry, and a second patch for it would not apply or would
    shadow Debian's. When the mirror lacks the newest version's packaging tarball, the
    changelog comes from one of its binary packages (``arch``, default this machine's:
    ``_binary_changelog``), its patches are unknown, and the older versions are tried,
    newest first, for the newest one whose source the mirror has (``fetchable``).
    """
    _check_names(source, [cve])
    distro = _distro_of(release)
    suites = _Suites(archive if archive is not None else ArchiveAccess.from_environment(), distro)
    ours = [p for s in distro.suites for p in suites.versions(s, source)]
    if not ours:
        raise InputError(f"{source} is not a source package of {release}")
    ours.sort(key=lambda p: parse_version(p.version), reverse=True)
    candidate = ours[0]
    display = f"{source} {candidate.version}"
    try:
        tree = suites.debian_tree(candidate)
    except MirrorMissingError:
        changelog, evidence = _binary_changelog(suites, candidate, arch or host_arch())
        entry = _changelog_entry(changelog, cve, display=f"{display} ({evidence})")
        older = [p for p in ours if compare_versions(p.version, candidate.version) < 0]
        fetchable = next((p.version for p in older if _on_mirror(suites, p)), None)
        return ReleaseStatus(
            source=source, cve=cve, release=release, version=candidate.version,
            fixed_line=entry.line if entry is not None else "", patches=(),
            evidence=f"{evidence}; the packaging tarball is missing from the mirror, "
            "so its patches are unknown",
            patches_known=False, fetchable=fetchable,
            fixes=_changelog_fixes(changelog, f"{display} ({evidence})"),
        )  # fmt: skip
    changelog = tree.text("debian/changelog") or b""
    entry = _changelog_entry(changelog, cve, display=display)
    patches = tuple(
        name.removeprefix("debian/patches/")
        for name, text in sorted(tree.files.items())
        if name.startswith("debian/patches/")
        and name != "debian/patches/series"
        and (cve.lower() in name.lower() or cve in _header_text(text))
    )
    return ReleaseStatus(
        source=source, cve=cve, release=release, version=candidate.version,
        fixed_line=entry.line if entry is not None else "", patches=patches,
        evidence=f"debian/changelog and debian/patches of {tree.display}",
        fetchable=candidate.version, fixes=_changelog_fixes(changelog, display),
    )  # fmt: skip


# ---------------------------------------------- patch -> recipe -> build -> repo -> image


def _clean(value: str, limit: int = 500) -> str:
    text = " ".join(plain_line(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean_description(value: str, lines: int = 24) -> str:
    """A DEP-3 ``Description``: the summary line, then up to ``lines`` lines of the long
    description, each cleaned and indented by one space (an empty one as `` .``, as in
    Debian control files); the value for ``Field: value`` with its continuation lines."""
    first, *rest = value.split("\n")
    body = [_clean(line, 200) for line in rest]
    while body and not body[-1]:
        body.pop()
    while body and not body[0]:
        body.pop(0)
    kept = [f" {line}" if line else " ." for line in body[:lines]]
    if len(body) > lines:
        kept.append(" …")
    return "\n".join([_clean(first), *kept])


def _check_diff_paths(text: bytes, name: str) -> None:
    """Refuse a patch whose file names are absolute or lead out of the tree (``..``)."""
    for number, raw in enumerate(text.decode("utf-8", "replace").splitlines(), start=1):
        if raw.startswith(("--- ", "+++ ")):
            target = raw[4:].split("\t", 1)[0].strip()
        elif raw.startswith("diff --git "):
            target = raw[len("diff --git ") :]
        elif raw.startswith("Index: "):
            target = raw[len("Index: ") :].strip()
        else:
            continue
        for path in target.split():
            if path == "/dev/null":
                continue
            if path.startswith("/") or ".." in PurePosixPath(path).parts:
                raise InputError(
                    f"patch {name} names {path!r}, outside the source tree",
                    location=Location(name, number),
                    hint="a patch for kiln names paths inside the tree (a/..., b/...)",
                )


def backport_header(patch: PatchFile, cves: Sequence[str], *, updated: dt.date) -> str:
    """The DEP-3 block kiln writes above a received patch (the fields, then a blank line).

    Fields come from ``patch.headers`` (control characters removed, one line each but
    ``Description``, which keeps its long description as continuation lines);
    ``CVE`` is the backport's CVEs and ``Last-Update`` the backport's date; a patch
    with no ``Description``/``Subject`` gets one naming the CVEs, and one with neither
    ``Origin`` nor ``Bug`` an ``Origin: other`` naming where kiln received it.
    """
    fields: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in patch.headers:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,63}", key):
            continue
        lowered = key.lower()
        if lowered in ("cve", "last-update") or (lowered in seen and not lowered.startswith("bug")):
            continue
        seen.add(lowered)
        fields.append(
            (key, _clean_description(value) if lowered == "description" else _clean(value))
        )
    if not ({"description", "subject"} & seen):
        fields.insert(0, ("Description", f"Fix {', '.join(cves)}"))
    if "origin" not in seen and not any(k.startswith("bug") for k in seen):
        fields.append(("Origin", f"other, received by kiln as {patch.name}"))
    fields.append(("CVE", ", ".join(cves)))
    fields.append(("Last-Update", updated.isoformat()))
    return "".join(f"{k}: {v}\n" for k, v in fields) + "\n"


def render_patch(patch: PatchFile, cves: Sequence[str], *, updated: dt.date) -> bytes:
    """kiln's DEP-3 block, then the patch exactly as received (its own header too)."""
    return backport_header(patch, cves, updated=updated).encode() + patch.text


def _names_a_file(line: str) -> bool:
    return line.startswith(("patching file", "checking file"))


def _hunk_report(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.strip()]
    keep = [
        line
        for line in lines
        if re.search(
            r"FAILED|can't find file|Reversed|malformed|Only garbage|No file to patch", line
        )
        or _names_a_file(line)
    ]
    # a dry run says "checking file X" before X's hunks: keep a file's line only when
    # one of its hunks failed, so every "Hunk #n FAILED" names its file
    named: list[str] = []
    for line in keep:
        if _names_a_file(line) and named and _names_a_file(named[-1]):
            named.pop()
        named.append(line)
    if named and _names_a_file(named[-1]):
        named.pop()
    return (named or lines)[-20:]


def apply_patches(tree: Path, patches: Sequence[tuple[str, bytes]]) -> None:
    """Apply each patch to ``tree`` in order (as dpkg-source would: -p1, no fuzz).

    Each is first tried with ``--dry-run``: a patch that does not apply raises
    ``PatchRejectedError`` with the rejected hunks in ``details`` and leaves the tree as
    the previous patches made it (nothing half-applied).
    """
    for name, text in patches:
        _check_diff_paths(text, name)
        base = ["patch", "--batch", "--forward", "-F", "0", "-p1", "-t", "-d", str(tree)]
        dry = subprocess.run(
            [*base, "--dry-run"], input=text, capture_output=True, timeout=120, check=False
        )
        if dry.returncode != 0:
            out = (dry.stdout + dry.stderr).decode("utf-8", "replace")
            raise PatchRejectedError(
                f"patch {name} does not apply to {tree.name}",
                location=Location(name),
                details=_hunk_report(out),
                hint="the fix needs a context change for this version: adapt the patch "
                "(dpkg-source -x, quilt push, fix the rejects, quilt refresh)",
            )
        done = subprocess.run(
            [*base, "-s", "-E"], input=text, capture_output=True, timeout=120, check=False
        )
        if done.returncode != 0:  # the dry run passed: only a changed tree gets here
            raise PatchRejectedError(
                f"patch {name} applied in a dry run but not for real to {tree.name}",
                details=_hunk_report(done.stdout.decode("utf-8", "replace")),
            )


def recipe_text(
    source: str,
    version: str,
    *,
    distro: Distro,
    revision: int,
    patches: Sequence[str],
    existing: Recipe | None,
    note: str,
    tests: Sequence[RecipeTest] = (),
) -> bytes:
    """The recipe YAML: an existing recipe of the same version keeps its settings;
    ``tests`` are added unless the recipe has a test of the same name."""
    data: dict[str, object] = {}
    if existing is not None and existing.version == version:
        data = existing.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    kept = list(existing.tests) if existing is not None and existing.version == version else []
    names = {t.name for t in kept}
    merged = kept + [t for t in tests if t.name not in names]
    if merged:
        data["tests"] = [
            t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in merged
        ]
    data.update(
        {
            "source": source,
            "version": version,
            "distro": distro.id,
            "revision": revision,
            "patches": [{"path": p} for p in patches],
        }
    )
    head = "".join(f"# {line}\n" for line in note.splitlines())
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return (head + body).encode()


_TEST_STEP = re.compile(r"^\s+(?:dh_auto_test|debian/rules override_dh_auto_test)\b")
_NEXT_STEP = re.compile(r"^\s+(?:dh_(?!auto_test)\w+|create-stamp|debian/rules override_)")
_NOOP = re.compile(r"^\s*(?::|true)(?:\s.*)?$")  # the shell's no-op command, echoed by make
_MAKE_NOISE = re.compile(r"^make(?:\[\d+\])?: (?:Entering|Leaving) directory|^\s*$")
_SUMMARY = (
    r"\d+% tests passed, \d+ tests? failed out of \d+",  # ctest
    r"^# (?:TOTAL|PASS|FAIL|SKIP|XFAIL|XPASS|ERROR): +\d+",  # automake
    r"^(?:Ok|Fail|Skipped|Expected Fail|Timeout): +\d+",  # meson
    r"(?i)^.*\b(?:all )?\d+ tests? (?:passed|failed|ok)\b.*$",
)


def package_test_outcome(
    log: Path, recipe_tests: Sequence[tuple[str, bool, str]] = ()
) -> PackageTests:
    """What the build log says the package's own test step (``dh_auto_test``) did.

    The step's output is the lines between its announcement and the next debhelper
    step, without make's directory lines: none means the package defines no test
    suite for its build system (``ran`` is False). ``summary`` keeps the test runners'
    summary lines (ctest, automake, meson, "N tests passed").
    """
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return PackageTests(False, ("the build log cannot be read",), log, 0, tuple(recipe_tests))
    segment: list[str] = []
    inside = seen = False
    for line in lines:
        if _TEST_STEP.match(line):
            inside = seen = True
            continue
        if inside and _NEXT_STEP.match(line):
            inside = False
        if inside and not _MAKE_NOISE.match(line):
            segment.append(line)
    text = "\n".join(segment)
    summary = [
        m.group(0).strip()
        for pattern in _SUMMARY
        for m in re.finditer(pattern, text, flags=re.MULTILINE)
    ]
    # an override that only echoes a no-op (": Skipping tests during indep build",
    # libxml2's) ran nothing
    noops = [line.strip() for line in segment if _NOOP.match(line)]
    ran = len(noops) < len(segment)
    if not seen:
        summary = ["the log has no dh_auto_test step (not a debhelper build, or nocheck)"]
    elif not segment:
        summary = ["dh_auto_test ran and found no test suite for the build system"]
    elif not ran:
        summary = [f"the test step ran no test suite, it only said: {' / '.join(noops)[:200]}"]
    return PackageTests(
        ran, tuple(dict.fromkeys(summary))[-12:], log, len(segment), tuple(recipe_tests)
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".kiln-publish.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def publish_debs(debs: Sequence[Path], repository: Path, *, gnupghome: Path | None) -> Path:
    """Add ``debs`` to kiln's apt repository at ``repository`` (signed; one writer at a time)."""
    home = gnupghome or default_cache_root() / "gnupg"
    key = ensure_signing_key(home)
    epoch = source_date_epoch()
    date = (
        dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch is not None else dt.datetime.now(dt.UTC)
    )
    with _locked(repository):
        published = publish(repository, list(debs), key=key, date=date, suite=KILN_SUITE)
    return published.keyring


def with_kiln_repository(spec: bytes, path: str) -> bytes:
    """The spec's text with ``repositories: [kiln]`` after its ``distro:`` line (comments
    and order kept); a spec that lists other repositories is an ``InputError``."""
    text = spec.decode("utf-8")
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.startswith("repositories:"):
            value = line.split(":", 1)[1].split("#", 1)[0].strip()
            if re.fullmatch(r"\[\s*kiln\s*\]", value):
                return spec
            raise InputError(
                f"{path}: repositories is {value!r}; kiln adds only to a missing key",
                location=Location(path, number + 1, field="repositories"),
            )
    for number, line in enumerate(lines):
        if line.startswith("distro:"):
            lines.insert(number + 1, "repositories: [kiln]   # kiln's rebuilds (backports)\n")
            return "".join(lines).encode()
    raise InputError(f"{path}: no top-level distro: line to add repositories after")


def packages_not_rebuilt(lock_path: Path, source: str, kiln_version: str) -> tuple[str, ...]:
    """The lock's packages of ``source`` that are not kiln's ``kiln_version`` build."""
    lock = read_lock(lock_path)
    return tuple(
        f"{variant}/{arch}: {p.name} {p.version} ({p.suite})"
        for variant, per_arch in sorted(lock.variants.items())
        for arch, locked in sorted(per_arch.items())
        for p in locked.packages
        if p.source == source and p.version != kiln_version
    )


def lock_changes(
    old: Path, new: Path, variants: Sequence[str], arch: str
) -> tuple[tuple[str, str | None, str | None], ...]:
    """(package, old version, new version) of every package that differs between two
    locks in ``variants`` on ``arch``, sorted by name."""

    def versions(path: Path) -> dict[str, str]:
        """Package -> version over ``variants`` on ``arch``."""
        lock = read_lock(path)
        out: dict[str, str] = {}
        for variant in variants:
            locked = lock.variants.get(variant, {}).get(arch)
            if locked is not None:
                out.update({p.name: p.version for p in locked.packages})
        return out

    before, after = versions(old), versions(new)
    return tuple(
        (name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    )


def _variants_with(lock_path: Path, source: str, arch: str) -> tuple[str, ...]:
    lock = read_lock(lock_path)
    return tuple(
        name
        for name, per_arch in lock.variants.items()
        if arch in per_arch and any(p.source == source for p in per_arch[arch].packages)
    )


def kiln_fixes_vex(layout: Path, *, arch: str, timestamp: str) -> tuple[bytes, dict[str, str]]:
    """An OpenVEX document stating ``fixed`` for each CVE an installed package's
    ``Kiln-Fixes`` names (read from the image's dpkg database), and those fields."""
    facts = read_sbom_input(layout, platform=f"linux/{arch}")
    statements: list[VexStatement] = []
    fields: dict[str, str] = {}
    for package in facts.packages:
        fixes = dict(package.kiln_build).get("Kiln-Fixes")
        if not fixes:
            continue
        fields[package.name] = fixes
        for cve in fixes.split():
            statements.append(
                VexStatement(
                    vulnerability=cve,
                    aliases=frozenset(),
                    products=(package.purl,),
                    status="fixed",
                    impact_statement=f"{package.name} {package.version} is kiln's rebuild "
                    f"with the fix (Kiln-Fixes: {fixes})",
                    timestamp=timestamp,
                )
            )
    doc = write_openvex(statements, author="kiln backport", timestamp=timestamp)
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(), fields


def _scan(
    layout: Path, arch: str, cves: Sequence[str], vex: Sequence[Path], db: str | None
) -> ScanCounts:
    result = scan_target(str(layout), vex=vex, db=db, platform=f"linux/{arch}")
    active = result.active
    return ScanCounts(
        layout=layout,
        counts=result.counts(),
        total=len(active),
        cve_reported=any(set(cves) & f.ids for f in active),
        findings=active,
    )


def stage_recipe(
    source: str,
    version: str,
    patches: Sequence[PatchFile],
    cves: Sequence[str],
    *,
    distro: Distro,
    catalog_root: Path,
    staging: Path,
    updated: dt.date,
    note: str,
    tests: Sequence[RecipeTest] = (),
) -> StagedFiles:
    """Write the recipe and its patches under ``staging`` (a ``recipes/`` directory).

    A recipe already in ``catalog_root`` for the same version keeps its patches, tests
    and settings and gets the next revision; the result must load as a recipe.
    """
    existing_path = catalog_root / "recipes" / f"{source}.yaml"
    existing = load_recipe(existing_path) if existing_path.is_file() else None
    names: list[str] = []
    revision = 1
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "patches" / source).mkdir(parents=True)
    files: dict[str, bytes] = {}
    rendered: dict[str, bytes] = {}
    if existing is not None and existing.recipe.version == version:
        for old in existing.patches:
            relative = next(p.path for p in existing.recipe.patches if p.path.endswith(old.name))
            if old.name in {p.name for p in patches}:
                continue  # replaced by the new rendering below
            names.append(relative)
            atomic_write(staging / relative, old.text.encode())
        revision = existing.recipe.revision + 1
    for patch in patches:
        relative = f"patches/{source}/{patch.name}"
        body = render_patch(patch, cves, updated=updated)
        if len(body) > MAX_PATCH:
            raise InputError(f"patch {patch.name} is larger than {MAX_PATCH} bytes")
        atomic_write(staging / relative, body)
        names.append(relative)
        files[f"recipes/{relative}"] = body
        rendered[patch.name] = body
    text = recipe_text(
        source,
        version,
        distro=distro,
        revision=revision,
        patches=names,
        existing=existing.recipe if existing else None,
        note=note,
        tests=tests,
    )
    recipe = staging / f"{source}.yaml"
    atomic_write(recipe, text)
    files[f"recipes/{source}.yaml"] = text
    load_recipe(recipe)  # what kiln wrote must load (model, DEP-3 headers)
    return StagedFiles(recipe, files, rendered)


def _kept_patches(
    catalog_root: Path, source: str, version: str, patches: Sequence[PatchFile]
) -> list[tuple[str, bytes]]:
    """The patches of the catalog's recipe that the new recipe keeps (same version)."""
    path = catalog_root / "recipes" / f"{source}.yaml"
    if not path.is_file():
        return []
    loaded = load_recipe(path)
    if loaded.recipe.version != version:
        return []
    replaced = {p.name for p in patches}
    return [(p.name, p.text.encode()) for p in loaded.patches if p.name not in replaced]


def backport_patches(
    source: str,
    version: str,
    patches: Sequence[PatchFile],
    cves: Sequence[str],
    *,
    catalog_root: Path,
    work: Path,
    image: str | None = None,
    release: str = "trixie",
    archive: ArchiveAccess | None = None,
    apt_repository: Path | None = None,
    gnupghome: Path | None = None,
    note: str = "",
    updated: dt.date | None = None,
    install: bool = True,
    tests: Sequence[RecipeTest] = (),
    progress: Progress = NO_PROGRESS,
    package_cache: PackageBuildCache | None = None,
    db: str | None = None,
) -> BackportResult:
    """Patches -> recipe -> sandboxed build with the package's tests -> kiln repo -> image.

    ``version`` is the release's version to start from (the one in the image's lock;
    ``kiln package build`` refuses it unless it is the release's newest). Every patch
    must apply to it (``PatchRejectedError``, nothing written). The recipe is staged in
    ``work/recipes`` and installed into ``catalog_root/recipes`` (``install``) only after
    the build and its tests passed. ``apt_repository`` (default ``work/repo``) receives
    the .debs; ``image`` names ``catalog_root/images/<image>.yaml`` to rebuild and scan
    (only its variants that contain the source, for this machine's architecture). The
    spec with ``repositories: [kiln]`` and its new lock are in ``result.files`` only.
    With a ``package_cache`` the build is shared (``kiln.pipeline.packagecache``): keyed
    by (source, version, patch set, recipe), built once, and its recipe files reused.
    The image's scans before and after read the vulnerability database ``db`` (None:
    ``$KILN_DB`` or the cache's): the factory passes its own, so the evidence's CVEs
    before and after come from the database that found the CVE.
    """
    _check_names(source, cves)
    distro = _distro_of(release)
    try:
        parse_version(version)
    except ValueError as exc:
        raise InputError(f"{version!r} is not a Debian version: {exc}") from exc
    if not patches:
        raise InputError("a backport needs at least one patch")
    for patch in patches:
        if not _PATCH_NAME.match(patch.name):
            raise InputError(
                f"{patch.name!r} is not a patch file name (letters, digits, ._+-, "
                "ending .patch or .diff; no directories)"
            )
        if len(patch.text) > MAX_PATCH:
            raise InputError(f"patch {patch.name} is larger than {MAX_PATCH} bytes")
        _check_diff_paths(patch.text, patch.name)
    if len({p.name for p in patches}) != len(patches):
        raise InputError("two patches have the same file name")
    repo = archive if archive is not None else ArchiveAccess.from_environment()
    builder = SourceBuilder(repo, progress)
    arch = host_arch()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    day = updated or _today()

    fetched, _ = builder.fetch(distro, source, version=version)
    scratch = work / "check"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with progress.phase(f"checking that {len(patches)} patch(es) apply to {source} {version}"):
        tree = unpack_source(fetched, Path("/"), scratch, log=work / "check.log")
        fmt = tree / "debian" / "source" / "format"
        if not fmt.is_file() or fmt.is_symlink() or fmt.read_text().strip() != "3.0 (quilt)":
            raise PatchRejectedError(
                f"{source} {version} is not a '3.0 (quilt)' source: kiln adds patches through "
                "debian/patches only"
            )
        apply_patches(
            tree,
            [
                *_kept_patches(catalog_root, source, version, patches),
                *((p.name, p.text) for p in patches),
            ],
        )
    shutil.rmtree(scratch, ignore_errors=True)
    timings["fetch_and_check"] = time.monotonic() - started

    header = note or f"{source} {version} with {', '.join(cves)} fixed (kiln backport)"

    def stage(staging: Path) -> StagedFiles:
        return stage_recipe(
            source, version, patches, cves, distro=distro, catalog_root=catalog_root,
            staging=staging, updated=day, note=header, tests=tests,
        )  # fmt: skip

    def build(recipe: Path, out_dir: Path) -> BuildOutput:
        shutil.rmtree(out_dir, ignore_errors=True)
        return builder.build_recipe(recipe, arch=arch, out_dir=out_dir)

    mark = time.monotonic()
    reused = False
    if package_cache is None:
        staged = stage(work / "recipes")
        output = build(staged.recipe, work / "packages")
        staged_files, staged_patches = staged.files, staged.patches
    else:
        existing = catalog_root / "recipes" / f"{source}.yaml"
        key = build_key(
            source, version, [(p.name, p.text, p.headers) for p in patches], cves=cves,
            release=release, arch=arch, tests=[t.model_dump_json() for t in tests],
            recipe=existing.read_bytes() if existing.is_file() else None,
        )  # fmt: skip
        with progress.phase(f"building {source} {version} once (package build {key[:12]})"):
            shared = package_cache.build_once(key, stage, build)
        output, staged_files, staged_patches = shared.output, shared.files, shared.patches
        reused = shared.reused
    timings["build"] = time.monotonic() - mark
    record = json.loads(
        output.log.with_name(f"{source}_{output.version}.kiln-build.json").read_bytes()
    )
    tests_done = tuple((t["name"], bool(t["passed"]), str(t["reason"])) for t in record["tests"])
    package_tests = package_test_outcome(output.log, tests_done)
    built = tuple(
        BuiltPackage(d.name.split("_", 1)[0], output.version, d.name.rsplit("_", 1)[-1][:-4],
                     d, sha256_file(d))
        for d in output.debs
    )  # fmt: skip

    apt_dir = apt_repository or work / "repo"
    mark = time.monotonic()
    with progress.phase(f"publishing {len(output.debs)} .debs to {apt_dir}"):
        keyring = publish_debs(output.debs, apt_dir, gnupghome=gnupghome)
    timings["publish"] = time.monotonic() - mark

    outcome = None
    files = dict(staged_files)
    if image is not None:
        mark = time.monotonic()
        outcome, image_files = _rebuild_image(
            image, source, cves, catalog_root=catalog_root, work=work, repo=repo,
            apt_dir=apt_dir, keyring=keyring, arch=arch, kiln_version=output.version,
            progress=progress, db=db,
        )  # fmt: skip
        files.update(image_files)
        timings["image"] = time.monotonic() - mark

    if install:
        for relative, body in staged_files.items():
            atomic_write(catalog_root / relative, body)
    timings["total"] = time.monotonic() - started
    patch_origins = {p.name: patch_headers(staged_patches[p.name]) for p in patches}
    origin = tuple(pair for p in patches for pair in patch_origins[p.name])
    return BackportResult(
        source=source,
        base_version=version,
        kiln_version=output.version,
        cves=tuple(cves),
        files=files,
        patches=staged_patches,
        packages=built,
        package_tests=package_tests,
        build_seconds=output.duration,
        apt_repository=apt_dir,
        origin=origin,
        patch_origins=patch_origins,
        provenance=output.log.with_name(f"{source}_{output.version}.provenance.json"),
        changelog_line="",
        image=outcome,
        timings=timings,
        build_reused=reused,
    )


def _rebuild_image(
    image: str,
    source: str,
    cves: Sequence[str],
    *,
    catalog_root: Path,
    work: Path,
    repo: ArchiveAccess,
    apt_dir: Path,
    keyring: Path,
    arch: str,
    kiln_version: str,
    progress: Progress,
    db: str | None,
) -> tuple[ImageOutcome, dict[str, bytes]]:
    """Build ``image`` before and after (from kiln's repository), test it, scan both
    against the database ``db`` (None: ``$KILN_DB`` or the cache's)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", image):
        raise InputError(f"{image!r} is not an image name")
    spec_path = catalog_root / "images" / f"{image}.yaml"
    lock_path = spec_path.with_suffix(".lock.json")
    if not spec_path.is_file() or not lock_path.is_file():
        raise InputError(f"{spec_path} (and its lock) is not in the catalog")
    variants = _variants_with(lock_path, source, arch)
    if not variants:
        raise InputError(f"image {image} has no package built from {source} on {arch}")
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    results: dict[str, list[ScanCounts]] = {"before": [], "after": []}
    layouts: dict[str, Path] = {}
    digests: dict[str, str] = {}
    passed = failed = 0
    fixes: dict[str, str] = {}
    files: dict[str, bytes] = {}
    notes: list[str] = []
    not_rebuilt: tuple[str, ...] = ()
    changes: tuple[tuple[str, str | None, str | None], ...] = ()
    after_repo = dataclasses.replace(
        repo, kiln_repo=KilnAptRepo(apt_dir.resolve().as_uri(), keyring), _snapshots={}
    )
    for when, which in (("before", repo), ("after", after_repo)):
        staged = work / f"catalog-{when}" / "images"
        shutil.rmtree(staged.parent, ignore_errors=True)
        shutil.copytree(spec_path.parent, staged, symlinks=False)
        spec_copy = staged / spec_path.name
        if when == "after":
            atomic_write(spec_copy, with_kiln_repository(spec_path.read_bytes(), str(spec_path)))
        options = BuildOptions(
            output=work / f"images-{when}", archs=(arch,), variants=variants,
            refresh=when == "after",
        )  # fmt: skip
        with progress.phase(f"building {image} ({when} the backport: {', '.join(variants)})"):
            try:
                built = build_spec(load_spec(spec_copy), which, options, progress=progress)
            except KilnError as exc:
                if when == "after":
                    raise
                # the image as locked cannot be rebuilt (its lock's .debs left the pool):
                # the backport goes on, without a "before" scan to compare with
                notes.append(f"the image as locked was not rebuilt for a scan: {exc.message}")
                built = []
        for variant in built:
            layout = variant.image.layout
            vex: list[Path] = []
            if when == "after":
                layouts[variant.label] = layout
                digests[variant.label] = variant.image.index_digest
                with progress.phase(f"testing {variant.label}"):
                    check = check_layout(layout, arch=arch, tag=variant.image.tag)
                passed += sum(o.status == "passed" for o in check.outcomes)
                failed += sum(o.status != "passed" for o in check.outcomes)
                document, found = kiln_fixes_vex(layout, arch=arch, timestamp=stamp)
                fixes.update(found)
                missing = [c for c in cves if not any(c in v.split() for v in found.values())]
                if missing:
                    raise PolicyError(
                        f"{variant.label}: no installed package's Kiln-Fixes names "
                        f"{', '.join(missing)}; the image did not take kiln's rebuild",
                        hint="check that kiln's build is not older than Debian's newest "
                        f"{source} (the overlay prefers Debian's then)",
                    )
                vex_path = work / f"{variant.label}.kiln-fixes.openvex.json"
                atomic_write(vex_path, document)
                vex.append(vex_path)
            with progress.phase(f"scanning {variant.label} ({when})"):
                results[when].append(_scan(layout, arch, cves, vex, db))
        if when == "after":
            files[f"images/{spec_path.name}"] = spec_copy.read_bytes()
            new_lock = staged / lock_path.name
            if new_lock.read_bytes() != lock_path.read_bytes():
                files[f"images/{lock_path.name}"] = new_lock.read_bytes()
            not_rebuilt = packages_not_rebuilt(new_lock, source, kiln_version)
            changes = lock_changes(lock_path, new_lock, variants, arch)
    if failed:
        raise PolicyError(
            f"{image}: {failed} image test(s) failed on the rebuilt image",
            details=[str(p) for p in layouts.values()],
        )
    still = [s for s in results["after"] if s.cve_reported]
    if still:
        raise PolicyError(
            f"{image}: kiln's scan still reports {', '.join(cves)} after the backport",
            details=[str(s.layout) for s in still],
        )
    outcome = ImageOutcome(
        name=image,
        variants=variants,
        layouts=layouts,
        digests=digests,
        tests_passed=passed,
        tests_failed=failed,
        before=tuple(results["before"]),
        after=tuple(results["after"]),
        kiln_fixes=fixes,
        notes=tuple(notes),
        not_rebuilt=not_rebuilt,
        package_changes=changes,
    )
    return outcome, files


def _today() -> dt.date:
    epoch = source_date_epoch()
    if epoch is not None:
        return dt.datetime.fromtimestamp(epoch, dt.UTC).date()
    return dt.datetime.now(dt.UTC).date()


class BackportOptions(TypedDict, total=False):
    """``backport_patches``'s optional keyword arguments (for ``backport_patch``)."""

    image: str | None
    release: str
    archive: ArchiveAccess | None
    apt_repository: Path | None
    gnupghome: Path | None
    note: str
    updated: dt.date | None
    install: bool
    tests: Sequence[RecipeTest]
    progress: Progress
    package_cache: PackageBuildCache | None
    db: str | None


def backport_patch(
    source: str,
    version: str,
    patch: bytes,
    headers: Sequence[tuple[str, str]] | Mapping[str, str],
    cves: Sequence[str],
    *,
    name: str,
    catalog_root: Path,
    work: Path,
    **options: Unpack[BackportOptions],
) -> BackportResult:
    """One patch (e.g. an upstream commit the research agent found) through the whole path.

    ``headers`` are the DEP-3 fields to lead the patch (``Description``, ``Origin``,
    ``Bug``...); ``options`` are ``backport_patches``'s keyword arguments.
    """
    pairs = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
    return backport_patches(
        source, version, [PatchFile(name, patch, pairs)], cves,
        catalog_root=catalog_root, work=work, **options,
    )  # fmt: skip


def backport_from_unstable(
    fix: UnstableFix,
    *,
    catalog_root: Path,
    work: Path,
    version: str | None = None,
    image: str | None = None,
    archive: ArchiveAccess | None = None,
    apt_repository: Path | None = None,
    gnupghome: Path | None = None,
    updated: dt.date | None = None,
    install: bool = True,
    tests: Sequence[RecipeTest] = (),
    progress: Progress = NO_PROGRESS,
    package_cache: PackageBuildCache | None = None,
    db: str | None = None,
) -> BackportResult:
    """Backport unstable's patch(es) for ``fix.cve`` onto the release's ``version``.

    ``version`` defaults to the release's candidate (``fix.release_version``); ``db`` is
    the database the image's scans read (``backport_patches``). An
    ``upstream`` or ``unlocated`` fix has no patch to take: ``PolicyError`` saying so
    (the research agent, issue #17, finds the commit and calls ``backport_patch``).
    """
    if fix.kind != "patch" or not fix.patches:
        raise PolicyError(
            f"{fix.source}: no unstable patch to backport for {fix.cve} ({fix.kind})",
            hint=fix.note,
        )
    base = version or fix.release_version
    patches = []
    for item in fix.patches:
        bug = [("Bug-Debian", f"https://bugs.debian.org/{b}") for b in fix.bugs]
        theirs = {k.lower(): v for k, v in item.headers}
        origin = theirs.get("origin") or (
            f"vendor, Debian {fix.suite} {fix.source} {fix.unstable_version} "
            f"debian/patches/{item.name}"
        )
        headers = (
            ("Description", item.description),
            *[(k, v) for k, v in item.headers if k.lower() in ("author", "from", "date")],
            ("Origin", origin),
            *bug,
            *[(k, v) for k, v in item.headers
              if k.lower().startswith("bug") or k.lower() in ("applied-upstream", "forwarded")],
            ("X-Kiln-Backport", f"from Debian {fix.suite} {fix.source} {fix.unstable_version} "
             f"(fixed in {fix.fixed_version}) onto {fix.release} {base}; original sha256 "
             f"{item.sha256}"),
            ("X-Debian-Changelog", fix.changelog_line),
        )  # fmt: skip
        patches.append(PatchFile(PurePosixPath(item.name).name, item.text, headers))
    note = (
        f"{fix.source} {base} ({fix.release}) with the fix for {fix.cve} backported from Debian "
        f"{fix.suite} ({fix.origin}).\nWritten by kiln's backport (kiln.pipeline.backport); "
        f"Debian's changelog: {fix.changelog_line}"
    )
    result = backport_patches(
        fix.source, base, patches, [fix.cve], catalog_root=catalog_root, work=work,
        image=image, release=fix.release, archive=archive,
        apt_repository=apt_repository, gnupghome=gnupghome, note=note, updated=updated,
        install=install, tests=tests, progress=progress, package_cache=package_cache, db=db,
    )  # fmt: skip
    return dataclasses.replace(result, changelog_line=fix.changelog_line)


# ------------------------------------------------------------------- what to backport


@dataclass(frozen=True)
class BackportCandidate:
    """A CVE that Debian unstable fixes and the release does not, in a catalog image."""

    image: str
    source: str
    locked_version: str  # the source version in the image's lock
    cve: str
    fixed_version: str  # the first unstable version naming it
    suite: str
    line: str  # the changelog item


def unstable_candidates(
    catalog_root: Path,
    *,
    db: str | None = None,
    release: str = "trixie",
    arch: str | None = None,
) -> list[BackportCandidate]:
    """Every (image, source, CVE) of the catalog's locks that only unstable fixes.

    Reads the ``debian-archive`` feed's statuses from kiln's database (``db``, default
    ``$KILN_DB`` / the cache's): ``fix-in-unstable`` with a fix-confidence mention, at a
    version newer than the one the lock has (``arch``, default this machine's).
    """
    distro = _distro_of(release)
    arch = arch or host_arch()
    per_image: dict[str, dict[str, str]] = {}
    for lock_path in sorted((catalog_root / "images").glob("*.lock.json")):
        lock = read_lock(lock_path)
        sources: dict[str, str] = {}
        for per_arch in lock.variants.values():
            for package in per_arch[arch].packages if arch in per_arch else ():
                sources[package.source] = package.source_version
        per_image[lock_path.name.removesuffix(".lock.json")] = sources
    wanted = {s for sources in per_image.values() for s in sources}
    store = open_for_scan(db)
    try:
        data = store.load(debian_sources=wanted, release=distro.codename)
    finally:
        store.close()
    found: list[BackportCandidate] = []
    for image, sources in sorted(per_image.items()):
        for source, locked in sorted(sources.items()):
            for held in data.archive.get(source, ()):
                status = held.record
                if (
                    status.status == "fix-in-unstable"
                    and status.confidence == "fix"
                    and compare_versions(locked, status.version) < 0
                ):
                    found.append(
                        BackportCandidate(
                            image=image,
                            source=source,
                            locked_version=locked,
                            cve=status.cve,
                            fixed_version=status.version,
                            suite=status.suite,
                            line=status.line,
                        )
                    )
    found.sort(key=lambda c: (c.image, c.source, c.cve))
    return found


# ------------------------------------------------------------------ the PR's evidence


def cve_rows(findings: Iterable[Finding]) -> tuple[CveRow, ...]:
    """Findings as the forge's evidence rows, one per (vulnerability, package), sorted."""
    rows = {
        (f.id, f.package_name): CveRow(
            id=f.id,
            package=f.package_name,
            installed=f.package_version,
            severity=f.severity.label,
            fixed_version=f.fixed_version or f.unstable_version,
            kev=f.kev,
            epss=f.epss,
            title=f.title,
        )
        for f in findings
    }
    return tuple(rows[k] for k in sorted(rows))


def evidence_for(result: BackportResult, *, generation: str) -> Evidence:
    """The pull request's evidence (``kiln.forge.evidence``) of a backport with an image.

    CVEs before and after (the scans' active findings), the package changes of the
    relock, the checks (build, the package's test step, the recipe's tests, the image's
    tests, the scan), the build's provenance digest, each patch's DEP-3 fields and
    Debian's changelog line, and what was not rebuilt.
    """
    image = result.image
    if image is None:
        raise InputError("a backport's evidence needs the rebuilt image (pass image=)")
    step = result.package_tests
    checks = [
        CheckResult("build", "pass", f"{result.source} {result.kiln_version} "
                    f"in {result.build_seconds:.0f} s"),
        CheckResult("package tests (dh_auto_test)", "pass" if step.ran else "skipped",
                    "; ".join(step.summary)),
        *(CheckResult(f"recipe: {name}", "pass" if ok else "fail", reason)
          for name, ok, reason in step.recipe_tests),
        CheckResult(f"image tests ({', '.join(image.layouts)})",
                    "pass" if not image.tests_failed else "fail",
                    f"{image.tests_passed} passed, {image.tests_failed} failed"),
        CheckResult("scan", "pass" if not any(s.cve_reported for s in image.after) else "fail",
                    f"{', '.join(result.cves)} no longer reported (with the image's "
                    "Kiln-Fixes as VEX)"),
    ]  # fmt: skip
    patches = tuple(
        PatchOrigin(name, dict(headers), result.changelog_line or None)
        for name, headers in result.patch_origins.items()
    )
    digest = sha256_file(result.provenance) if result.provenance.is_file() else None
    return Evidence(
        image=image.name,
        kind="backport",
        generation=generation,
        cves_before=cve_rows(f for scan in image.before for f in scan.findings),
        cves_after=cve_rows(f for scan in image.after for f in scan.findings),
        packages=tuple(PackageChange(n, b, a) for n, b, a in image.package_changes),
        tests=tuple(checks),
        provenance_digest=f"sha256:{digest}" if digest else None,
        patches=patches,
        notes=(
            *image.notes,
            *(f"still Debian's: {line}" for line in image.not_rebuilt),
        ),
    )
