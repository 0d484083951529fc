"""Upstream repository discovery: from a Debian source package to a clonable repository.

``kiln research CVE --package SRC`` without ``--repo`` (issue 17 item 1). The release's
newest ``SRC`` is read from the signed Sources index (``SourceBuilder.universe``, the
path ``SourceBuilder.fetch`` uses) and only its packaging tarball (``.debian.tar.*``,
size and sha256 checked against the index entry, kept in kiln's cache) is fetched,
never the upstream tarball. The candidates, in this order:

1. ``debian/upstream/metadata`` (DEP-12, YAML): ``Repository``, ``Repository-Browse``,
   ``Bug-Database``, ``Bug-Submit``;
2. the Sources stanza's ``Homepage``;
3. ``debian/copyright`` (DEP-5 header only): the URLs of ``Source:`` and
   ``Upstream-Contact:``;
4. ``Vcs-Git``: Debian's packaging repository (usually on salsa), a last resort taken
   only when it carries upstream history, decided after opening it: it must have a tag
   naming the package's upstream version outside Debian's own tag namespaces
   (``debian/``, ``upstream/``, ``archive/``, ``pristine-tar``), i.e. upstream's own
   release tag, which a packaging-only repository (tarball imports) does not have.

Every URL is normalised (``normalise_url``): forge URLs (GitHub, GitLab and
``gitlab.*`` hosts with nested groups, salsa, Codeberg, Bitbucket, sourcehut, GitHub
Pages ``owner.github.io/repo``) become the project's https clone URL whatever page they
name (issues, tree, blob, merge requests); another host's URL is a candidate only when
it names a ``*.git`` repository: cgit/gitweb browse pages are cut after it
(``.../dash.git/log/``), gitweb's ``?p=NAME.git`` becomes the repository beside the
script, Savannah's cgit and project pages become its ``/git/NAME.git``; anything else
(a project web site, ``file:``, ``ext::``, a URL with credentials or control
characters) is not a candidate. The files are hostile input:
malformed YAML, non-string values, oversized members are skipped with a note, never a
traceback.

Resolution (``open_upstream``): each candidate in order, first in the local mirrors
(``KILN_RESEARCH_MIRRORS``: colon-separated folders of bare clones named
``<host>/<path>.git`` or ``<repo>.git``, e.g. fixbench's ``repos/``; a mirror whose git
config names another origin is skipped), else a bounded clone (``gitrepo.open_repo``).
The first that opens is used; when none does, ``UpstreamNotFoundError`` lists every
candidate with why it failed.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from debian.deb822 import Deb822

from kiln.debian.client import fetch_promised
from kiln.debian.distro import DISTROS
from kiln.errors import EnvironmentProblem, InputError, KilnError, RemoteContentError
from kiln.net import HttpStatusError
from kiln.pipeline.backport import read_debian_tar
from kiln.pipeline.source import SourceBuilder
from kiln.research.gitrepo import GitRepo, open_repo
from kiln.research.versions import TagIndex
from kiln.text import plain_line
from kiln.yamldoc import load_yaml

if TYPE_CHECKING:
    from kiln.debian.source_index import SourcePackage

MAX_DEBIAN_TAR = 32 << 20  # bytes of a packaging tarball read
MAX_URL = 500
WANTED = ("debian/upstream/metadata", "debian/copyright")
METADATA_FIELDS = ("Repository", "Repository-Browse", "Bug-Database", "Bug-Submit")
PACKAGING_TAGS = ("debian/", "upstream/", "archive/", "pristine-tar")
_DEBIAN_TAR = re.compile(r"\.debian\.tar\.(?:xz|gz|bz2|lzma)$")
_GITHUB_LIKE = {"github.com", "codeberg.org", "bitbucket.org", "gitee.com"}
_PAGE_WORDS = {
    "tree", "blob", "commits", "commit", "issues", "pulls", "pull", "merge_requests",
    "wiki", "releases", "tags", "raw", "archive", "src", "branches", "-",
}  # fmt: skip
_URL_IN_TEXT = re.compile(r"(?:https?|git)://[^\s<>\"'(),]+|git@[\w.-]+:[^\s<>\"'(),]+")


class UpstreamNotFoundError(EnvironmentProblem):
    """No candidate upstream repository could be opened (exit 3)."""


@dataclass(frozen=True)
class Candidate:
    """A normalised clone URL and where it was found (first finding first)."""

    url: str
    origins: tuple[str, ...]
    packaging: bool = False  # Vcs-Git: Debian's packaging repository, a last resort

    def describe(self) -> str:
        return f"{self.url} (from {', '.join(self.origins)})"


@dataclass(frozen=True)
class Packaging:
    """What discovery reads of one Debian source package."""

    source: str
    version: str
    where: str  # the tarball (or the index entry) the files come from
    homepage: str = ""
    vcs_git: str = ""
    files: Mapping[str, bytes] = field(default_factory=dict)  # of WANTED, when present
    notes: tuple[str, ...] = ()  # members refused or missing

    @property
    def upstream_version(self) -> str:
        return upstream_version(self.version)


@dataclass
class Discovery:
    """The candidates of a package, and what reading its files noted."""

    packaging: Packaging
    candidates: list[Candidate]
    notes: list[str]


@dataclass(frozen=True)
class Resolution:
    """Which candidate was used, from where, and why the ones before it were not."""

    candidate: Candidate
    location: str  # a mirror folder or the URL cloned
    tried: tuple[tuple[str, str], ...]  # (candidate, why not)


def upstream_version(debian_version: str) -> str:
    """``1:3.7.4+dfsg-4+deb13u1`` -> ``3.7.4``: no epoch, revision or repack suffix;
    ``2.12.7+dfsg+really2.9.14-2`` -> ``2.9.14`` (the version the source really is)."""
    text = debian_version.split(":", 1)[-1]
    if "-" in text:
        text = text.rsplit("-", 1)[0]
    text = text.rsplit("really", 1)[-1]  # 2.12.7+dfsg+really2.9.14: the code is 2.9.14
    return re.split(r"[+~.](?:dfsg|ds|repack|gh|git)", text, maxsplit=1)[0]


# ---------------------------------------------------------------- URL normalisation


def normalise_url(text: object) -> str | None:
    """The https clone URL a repository, browse or bug-tracker URL names; None if none.

    ``git@github.com:o/r.git``, ``git://github.com/o/r``, ``https://github.com/o/r/issues``
    -> ``https://github.com/o/r.git``; ``https://gitlab.gnome.org/GNOME/libxml2/-/tree/x``
    -> ``https://gitlab.gnome.org/GNOME/libxml2.git``; ``https://jqlang.github.io/jq/``
    -> ``https://github.com/jqlang/jq.git``; ``https://host/path/repo.git`` (another
    host) stays; a web site without ``.git`` is None.
    """
    if not isinstance(text, str):
        return None
    raw = text.strip()
    # Vcs-Git may add " -b BRANCH" and " [subdir]"
    raw = re.split(r"\s+(?:-b\s|\[)", raw, maxsplit=1)[0].strip()
    if not raw or len(raw) > MAX_URL or plain_line(raw) != raw or any(c.isspace() for c in raw):
        return None
    scp = re.fullmatch(r"(?:[\w.-]+@)?([\w.-]+\.[a-z]{2,}):/?([^:]+)", raw)
    if scp and "://" not in raw:
        raw = f"ssh://{scp.group(1)}/{scp.group(2)}"
    try:
        parts = urlsplit(raw)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http", "git", "ssh", "git+ssh", "git+https"):
        return None
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", host) or "." not in host:
        return None
    if parts.password or (parts.username and parts.scheme not in ("ssh", "git+ssh")):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") or not re.fullmatch(r"[\w.~+-]+", s) for s in segments):
        return None
    pages = re.fullmatch(r"([a-z0-9-]+)\.github\.io", host)
    if pages:
        if not segments:
            return None
        return f"https://github.com/{pages.group(1)}/{_strip_git(segments[0])}.git"
    if host in _GITHUB_LIKE or host == "www.github.com":
        if len(segments) < 2:
            return None
        host = host.removeprefix("www.")
        return f"https://{host}/{segments[0]}/{_strip_git(segments[1])}.git"
    if host == "git.sr.ht":
        if len(segments) < 2 or not segments[0].startswith("~"):
            return None
        return f"https://{host}/{segments[0]}/{_strip_git(segments[1])}"
    if host.startswith("gitlab.") or host == "salsa.debian.org" or ".gitlab." in host:
        project: list[str] = []
        for s in segments:
            if s in _PAGE_WORDS and len(project) >= 2:
                break
            project.append(s)
            if s.endswith(".git"):
                break
        if len(project) < 2:
            return None
        project[-1] = _strip_git(project[-1])
        return f"https://{host}/{'/'.join(project)}.git"
    savannah = host in _SAVANNAH or host.startswith(("git.savannah.", "cvs.savannah."))
    if host in _SAVANNAH and len(segments) >= 2 and segments[0] in ("projects", "p"):
        # a Savannah project page: its git repository (when it has one) is at /git/NAME.git
        return f"https://git.savannah.{host.split('.', 1)[1]}/git/{_strip_git(segments[1])}.git"
    gitweb = _gitweb_project(parts.query)
    if gitweb is not None:
        # gitweb's "?p=NAME.git;a=...": the repository beside the script's folder
        # (https://sourceware.org/git/?p=glibc.git -> https://sourceware.org/git/glibc.git)
        segments = [s for s in segments if not s.endswith((".cgi", ".pl"))] + gitweb
        if any(s in (".", "..") or not re.fullmatch(r"[\w.~+-]+", s) for s in segments):
            return None
    else:
        # cgit and gitweb browse pages go on past the repository (".../tar.git/tree/x",
        # ".../linux.git/log/"): the repository ends at the first segment named *.git
        end = next((i for i, s in enumerate(segments) if s.endswith(".git") and len(s) > 4), None)
        if end is not None:
            segments = segments[: end + 1]
    if savannah and segments[:1] == ["cgit"]:
        segments = ["git", *segments[1:]]  # Savannah's cgit browses what /git/ clones
    if segments and segments[-1].endswith(".git") and len(segments[-1]) > 4:
        scheme = "https" if parts.scheme in ("http", "https", "git+https") else parts.scheme
        if scheme in ("ssh", "git+ssh"):
            return None  # ssh to an unknown host: needs keys kiln does not have
        netloc = host if port is None else f"{host}:{port}"
        return f"{scheme}://{netloc}/{'/'.join(segments)}"
    return None


_SAVANNAH = {"savannah.gnu.org", "savannah.nongnu.org"}


def _gitweb_project(query: str) -> list[str] | None:
    """The path segments of gitweb's ``p=`` parameter (``p=glibc.git;a=commit``)."""
    for pair in re.split(r"[;&]", query):
        key, _, value = pair.partition("=")
        if key == "p" and value.endswith(".git"):
            return [s for s in value.split("/") if s]
    return None


def _strip_git(name: str) -> str:
    return name[:-4] if name.endswith(".git") and len(name) > 4 else name


# ---------------------------------------------------------------- reading the files


def metadata_urls(data: bytes, *, where: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(field, URL) pairs of ``debian/upstream/metadata``, and notes on what was skipped."""
    notes: list[str] = []
    try:
        doc = load_yaml(data, Path(where), error=InputError)
    except InputError as exc:
        return [], [f"{where}: not read: {plain_line(exc.message)[:200]}"]
    if not isinstance(doc, Mapping):
        return [], [f"{where}: not a mapping of fields: not read"]
    found: list[tuple[str, str]] = []
    for name in METADATA_FIELDS:
        value = doc.get(name)
        if value is None:
            continue
        values = list(value) if isinstance(value, list) else [value]
        for item in values[:10]:
            if isinstance(item, str):
                found.append((name, item))
            else:
                notes.append(f"{where}: {name} is not a string ({type(item).__name__}): skipped")
    return found, notes


def copyright_urls(data: bytes, *, where: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(field, URL) pairs of a DEP-5 ``debian/copyright`` header's Source/Upstream-Contact."""
    text = data.decode("utf-8", "replace")
    header = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"), maxsplit=1)[0]
    try:
        fields = Deb822(header.splitlines())
    except (ValueError, KeyError) as exc:
        return [], [f"{where}: header not read: {type(exc).__name__}"]
    if not any(k.lower() == "format" for k in fields):
        return [], [f"{where}: not machine-readable (DEP-5): not read"]
    found: list[tuple[str, str]] = []
    for name in ("Source", "Upstream-Contact"):
        value = fields.get(name) or ""
        found += [(name, url) for url in _URL_IN_TEXT.findall(value)[:10]]
    return found, []


def read_packaging_tar(data: bytes, *, display: str) -> tuple[dict[str, bytes], list[str]]:
    """``debian/upstream/metadata`` and ``debian/copyright`` of a packaging tarball.

    Read by ``kiln.pipeline.backport.read_debian_tar`` (streamed, bounded; absolute or
    ``..`` member names refused with ``RemoteContentError``); a link or special file in
    their place is noted and not read.
    """
    tree = read_debian_tar(data, display=display, wanted=WANTED.__contains__)
    notes = [f"{display}: {name} is not a regular file: not read" for name in tree.refused]
    return dict(tree.files), notes


def discover(packaging: Packaging) -> Discovery:
    """The candidate repositories of ``packaging``, in the module docstring's order."""
    notes = list(packaging.notes)
    found: list[tuple[str, str]] = []
    meta = packaging.files.get("debian/upstream/metadata")
    if meta is not None:
        pairs, more = metadata_urls(meta, where=f"{packaging.where}: debian/upstream/metadata")
        found += [(f"debian/upstream/metadata {k}", v) for k, v in pairs]
        notes += more
    if packaging.homepage:
        found.append(("Homepage", packaging.homepage))
    copyright_file = packaging.files.get("debian/copyright")
    if copyright_file is not None:
        pairs, more = copyright_urls(copyright_file, where=f"{packaging.where}: debian/copyright")
        found += [(f"debian/copyright {k}", v) for k, v in pairs]
        notes += more
    order: dict[str, list[str]] = {}
    for origin, raw in found:
        url = normalise_url(raw)
        if url is not None:
            order.setdefault(url, []).append(origin)
    candidates = [Candidate(url, tuple(origins)) for url, origins in order.items()]
    vcs = normalise_url(packaging.vcs_git) if packaging.vcs_git else None
    if vcs is not None:
        if vcs in order:
            notes.append(f"Vcs-Git {vcs} is also named as upstream: tried as upstream")
        else:
            candidates.append(Candidate(vcs, ("Vcs-Git",), packaging=True))
    return Discovery(packaging, candidates, notes)


# ---------------------------------------------------------------- the archive


def fetch_packaging(
    source: str, *, release: str = "trixie", builder: SourceBuilder | None = None
) -> Packaging:
    """The release's newest ``source``: Homepage, Vcs-Git and the files discovery reads."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", source):
        raise InputError(f"{source!r} is not a Debian source package name")
    distro = next((d for d in DISTROS.values() if release in (d.codename, d.id)), None)
    if distro is None:
        raise InputError(f"unknown release {release!r}")
    src = builder if builder is not None else SourceBuilder.from_environment()
    universe = src.universe(distro, (source,))
    package = universe.newest(source)
    stanza = _stanza(package)
    homepage, vcs = stanza.get("Homepage", ""), stanza.get("Vcs-Git", "")
    what = f"{source} {package.version} ({package.suite})"
    tars = [f for f in package.files if _DEBIAN_TAR.search(f.name)]
    if not tars:
        note = f"{what}: no .debian.tar (format {package.format}): only Homepage and Vcs-Git"
        return Packaging(source, package.version, what, homepage, vcs, {}, (note,))
    item = tars[0]
    if item.size > MAX_DEBIAN_TAR:
        raise RemoteContentError(f"{what}: {item.name} is {item.size} bytes: not read")
    cache = src.archive.cache
    data = cache.read_blob(item.sha256, size=item.size)
    tried: list[str] = []
    for location in universe.locations(package) if data is None else ():
        url = f"{location}/{item.name}"
        try:
            data = fetch_promised(src.archive.fetcher, url, size=item.size, source=url)
        except HttpStatusError as exc:
            tried.append(f"{url}: HTTP {exc.status}")
            continue
        cache.put_blob(data, sha256=item.sha256, size=item.size, source=url)  # checks sha256
        break
    if data is None:
        # the index's Homepage and Vcs-Git still name candidates: a note, not a failure
        note = (
            f"{what}: {item.name} is missing from the mirror (its signed index lists it; "
            f"{'; '.join(tried)}): debian/upstream/metadata and debian/copyright not read"
        )
        return Packaging(source, package.version, what, homepage, vcs, {}, (note,))
    files, notes = read_packaging_tar(data, display=item.name)
    return Packaging(source, package.version, item.name, homepage, vcs, files, tuple(notes))


def _stanza(package: SourcePackage) -> Mapping[str, str]:
    try:
        return Deb822(package.stanza.splitlines())
    except (ValueError, KeyError):
        return {}


# ---------------------------------------------------------------- resolution


def mirror_dirs(environ: Mapping[str, str]) -> list[Path]:
    """``KILN_RESEARCH_MIRRORS``'s folders (colon-separated; empty entries ignored)."""
    return [Path(p) for p in environ.get("KILN_RESEARCH_MIRRORS", "").split(":") if p.strip()]


def find_in_mirrors(url: str, dirs: Sequence[Path]) -> tuple[Path | None, list[str]]:
    """The mirror clone of ``url`` (``<host>/<path>.git``, then ``<repo>.git``), and notes."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return None, []
    last = _strip_git(segments[-1])
    names = [
        Path(parts.hostname or "", *segments[:-1], f"{last}.git"),
        Path(f"{last}.git"),
        Path(f"{last.lower()}.git"),
    ]
    notes: list[str] = []
    for folder in dirs:
        for name in dict.fromkeys(names):
            path = folder / name
            if not (path / "objects").is_dir():
                continue
            other = _origin_of(path)
            if other is not None and other != url:
                notes.append(f"mirror {path} is a clone of {other}, not {url}: skipped")
                continue
            return path, notes
    return None, notes


def _origin_of(path: Path) -> str | None:
    """The normalised ``remote.origin.url`` of a mirror's git config, if it names one."""
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read(path / "config", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return None
    section = 'remote "origin"'
    if not config.has_option(section, "url"):
        return None
    return normalise_url(config.get(section, "url"))


def has_upstream_history(git: GitRepo, version: str) -> str | None:
    """The upstream release tag of ``version`` outside Debian's tag namespaces, if any."""
    tags = {k: v for k, v in git.tags().items() if not k.startswith(PACKAGING_TAGS)}
    return TagIndex.build(tags).tag(version)


Opener = Callable[[str], AbstractContextManager[GitRepo]]


@contextmanager
def open_upstream(
    discovery: Discovery,
    *,
    mirrors: Sequence[Path] = (),
    opener: Opener = open_repo,
) -> Iterator[tuple[GitRepo, Resolution]]:
    """The first candidate that opens (mirror first, then the URL), with how it was found."""
    tried: list[tuple[str, str]] = []
    version = discovery.packaging.upstream_version
    with ExitStack() as stack:
        for candidate in discovery.candidates:
            local, notes = find_in_mirrors(candidate.url, mirrors)
            tried += [(candidate.url, n) for n in notes]
            where = str(local) if local is not None else candidate.url
            try:
                git = stack.enter_context(opener(where))
                tag = has_upstream_history(git, version) if candidate.packaging else ""
            except KilnError as exc:
                stack.close()
                tried.append((candidate.url, plain_line(exc.message)[:300]))
                continue
            if tag is None:
                stack.close()
                tried.append(
                    (candidate.url, f"Debian packaging only: no upstream tag of {version}")
                )
                continue
            # outside the try: an error of the caller's body is not a failed candidate
            yield git, Resolution(candidate, where, tuple(tried))
            return
    source = discovery.packaging.source
    where_read = f"{discovery.packaging.where}, its Homepage or Vcs-Git"
    raise UpstreamNotFoundError(
        f"no upstream repository of {source} could be opened"
        + (f" ({len(discovery.candidates)} candidates)" if discovery.candidates else ""),
        hint="pass --repo PATH (a local clone) or put a bare clone in a folder of "
        "KILN_RESEARCH_MIRRORS (<host>/<owner>/<repo>.git or <repo>.git)",
        details=[f"{url}: {why}" for url, why in tried]
        + ([] if discovery.candidates else [f"no repository URL in {where_read}"])
        + [f"note: {n}" for n in discovery.notes],
    )
