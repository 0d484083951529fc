"""Where the Debian archive is: mirrors from the host's apt sources or kiln's config.

Reads apt's two source formats, sources.list(5): deb822 ``*.sources`` files (parsed with
python-debian) and one-line ``*.list`` files, and derives for a ``Distro`` which base URL
serves each of its suites: ``<codename>`` and ``<codename>-updates`` from the main Debian
URI, ``<codename>-security`` from the URI whose suites end in ``-security``. The host
usually lists a different release than the one kiln builds; Debian serves every release
from the same URIs, so only the URIs are taken, never the suites.

kiln's config file (YAML, ``$KILN_CONFIG``, default ``~/.config/kiln/config.yaml``) may
override either URI::

    mirrors:
      debian: <URL of the main archive>
      debian-security: <URL of the security archive>

No mirror host is ever written in kiln's code: it comes from one of these two places.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from debian.deb822 import Deb822
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiln.debian.distro import Distro
from kiln.errors import InputError, Location
from kiln.yamldoc import load_yaml

DEFAULT_APT_DIR = Path("/etc/apt")

# Codenames and aliases of Debian releases: an entry naming one of these is the Debian
# archive (other vendors' entries, e.g. a "nodistro" suite, are ignored).
_DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "stable",
        "oldstable",
        "oldoldstable",
        "testing",
        "unstable",
        "experimental",
    }
)
_SUITE_SUFFIXES = ("-updates", "-security", "-backports", "-proposed-updates", "-backports-sloppy")
_FIELD_RE = re.compile(r"^[!-9;-~][!-9;-~]*:")  # deb822 field name: printable, no colon


@dataclass(frozen=True)
class SourceEntry:
    """One apt source: a repository URI with its suites, as written on the host."""

    types: tuple[str, ...]  # deb, deb-src
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None
    location: Location  # file and line where the entry starts

    @property
    def is_binary(self) -> bool:
        return "deb" in self.types

    @property
    def is_debian(self) -> bool:
        return any(_base_suite(s) in _DEBIAN_SUITES for s in self.suites)

    @property
    def is_security(self) -> bool:
        return any(s.endswith(("-security", "/updates")) for s in self.suites)


@dataclass(frozen=True)
class Mirrors:
    """The two Debian archive roots kiln reads from (no trailing slash)."""

    debian: str
    security: str
    origin: str = ""  # where they came from, for messages

    def suite_urls(self, distro: Distro) -> dict[str, str]:
        """Map each suite of ``distro`` to the mirror root that serves it."""
        main, updates, security = distro.suites
        return {main: self.debian, updates: self.debian, security: self.security}


def _base_suite(suite: str) -> str:
    for suffix in _SUITE_SUFFIXES:
        if suite.endswith(suffix):
            return suite[: -len(suffix)]
    return suite.split("/", 1)[0]


def normalize_url(url: str, *, location: Location) -> str:
    """Check a mirror URL is an absolute http(s) URL and drop any trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(
            f"{url!r} is not an http:// or https:// mirror URL",
            location=location,
            hint="kiln reads the archive over HTTP(S); use an http:// or https:// URI",
        )
    if parts.query or parts.fragment:
        raise InputError(f"mirror URL {url!r} must not have a query or fragment", location=location)
    return url.rstrip("/")


def parse_deb822_sources(text: str, *, path: str) -> list[SourceEntry]:
    """Parse a deb822 ``.sources`` file (sources.list(5) "DEB822-STYLE FORMAT")."""
    entries: list[SourceEntry] = []
    paragraph: list[str] = []
    start = 0
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if not line.strip():
            if paragraph:
                entries.extend(_deb822_entry(paragraph, Location(path, start)))
                paragraph = []
            continue
        if line.startswith("#"):
            continue
        if line[0] in " \t":
            if not paragraph:
                raise InputError(
                    "continuation line without a field before it",
                    location=Location(path, number),
                    hint="indented lines continue the field on the line above",
                )
        elif not _FIELD_RE.match(line):
            raise InputError(
                f"expected 'Field: value', found {line.strip()[:60]!r}",
                location=Location(path, number),
            )
        if not paragraph:
            start = number
        paragraph.append(line)
    return entries


def _deb822_entry(lines: list[str], location: Location) -> list[SourceEntry]:
    fields = Deb822(lines)

    def words(name: str) -> tuple[str, ...]:
        return tuple(str(fields.get(name, "")).split())

    if words("Enabled") and words("Enabled")[0].lower() == "no":
        return []
    types, uris, suites = words("Types"), words("URIs"), words("Suites")
    for name, value in (("Types", types), ("URIs", uris), ("Suites", suites)):
        if not value:
            raise InputError(f"source entry has no {name} field", location=location)
    components = words("Components")
    signed_by = str(fields["Signed-By"]).strip() if "Signed-By" in fields else None
    return [
        SourceEntry(types, uri, suites, components, signed_by, location)
        for uri in uris
        if not uri.startswith(("cdrom:", "file:", "copy:"))
    ]


def parse_one_line_sources(text: str, *, path: str) -> list[SourceEntry]:
    """Parse a one-line ``sources.list`` file (sources.list(5) "ONE-LINE-STYLE FORMAT")."""
    entries: list[SourceEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        location = Location(path, number)
        kind, _, rest = line.partition(" ")
        if kind not in ("deb", "deb-src"):
            raise InputError(
                f"expected a line starting with 'deb' or 'deb-src', found {kind!r}",
                location=location,
            )
        rest = rest.strip()
        options: dict[str, str] = {}
        if rest.startswith("["):
            closing = rest.find("]")
            if closing < 0:
                raise InputError("'[' options without a closing ']'", location=location)
            for option in rest[1:closing].split():
                key, sep, value = option.partition("=")
                if not sep:
                    raise InputError(f"option {option!r} is not key=value", location=location)
                options[key] = value
            rest = rest[closing + 1 :].strip()
        words = rest.split()
        if len(words) < 2:
            raise InputError(
                "expected 'URI suite [component...]' after the type", location=location
            )
        uri, suite, *components = words
        if uri.startswith(("cdrom:", "file:", "copy:")):
            continue
        entries.append(
            SourceEntry(
                (kind,), uri, (suite,), tuple(components), options.get("signed-by"), location
            )
        )
    return entries


def read_host_sources(apt_dir: Path = DEFAULT_APT_DIR) -> list[SourceEntry]:
    """Read ``sources.list`` and ``sources.list.d/*.list|*.sources`` under ``apt_dir``."""
    files: list[Path] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        files.append(main_list)
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files.extend(
            sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
        )
    entries: list[SourceEntry] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"cannot read apt sources: {exc}", location=Location(str(file))
            ) from exc
        if file.suffix == ".sources":
            entries.extend(parse_deb822_sources(text, path=str(file)))
        else:
            entries.extend(parse_one_line_sources(text, path=str(file)))
    return entries


def mirrors_from_sources(entries: Sequence[SourceEntry], *, searched: str) -> Mirrors:
    """Pick the main and security Debian URIs among ``entries`` (first match wins)."""
    return _combine(MirrorOverrides(), entries, searched=searched)


def _combine(
    overrides: MirrorOverrides, entries: Sequence[SourceEntry], *, searched: str
) -> Mirrors:
    debian = [e for e in entries if e.is_binary and e.is_debian]
    main = next((e for e in debian if not e.is_security), None)
    security = next((e for e in debian if e.is_security), None)
    origins: list[str] = []
    if overrides.debian:
        main_url = overrides.debian
        origins.append(overrides.path)
    elif main is not None:
        main_url = normalize_url(main.uri, location=main.location)
        origins.append(str(main.location))
    else:
        raise _missing("main Debian archive", "mirrors.debian", searched)
    if overrides.security:
        security_url = overrides.security
        origins.append(overrides.path)
    elif security is not None:
        security_url = normalize_url(security.uri, location=security.location)
        origins.append(str(security.location))
    else:
        raise _missing("Debian security archive", "mirrors.debian-security", searched)
    return Mirrors(main_url, security_url, origin=", ".join(dict.fromkeys(origins)))


def _missing(what: str, key: str, searched: str) -> InputError:
    return InputError(
        f"no {what} URI in the apt sources ({searched})",
        hint=f"add a 'deb' entry for it to the apt sources, or set {key} in kiln's config file",
    )


class _MirrorsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    debian: str | None = None
    debian_security: str | None = Field(default=None, alias="debian-security")

    @field_validator("debian", "debian_security")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


@dataclass(frozen=True)
class MirrorOverrides:
    """Mirror URLs set in kiln's config file (either may be absent)."""

    debian: str | None = None
    security: str | None = None
    path: str = ""


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$KILN_CONFIG``, else ``~/.config/kiln/config.yaml``."""
    configured = environ.get("KILN_CONFIG")
    if configured:
        return Path(configured)
    return Path(environ.get("HOME", str(Path.home()))) / ".config" / "kiln" / "config.yaml"


def load_mirror_overrides(path: Path) -> MirrorOverrides:
    """Read the ``mirrors`` section of kiln's config file; a missing file overrides nothing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return MirrorOverrides(path=str(path))
    except OSError as exc:
        raise InputError(f"cannot read kiln config: {exc}", location=Location(str(path))) from exc
    document = load_yaml(data, path, error=InputError)
    if document is None:
        return MirrorOverrides(path=str(path))
    if not isinstance(document, dict):
        raise InputError("kiln config must be a mapping", location=Location(str(path)))
    section = document.get("mirrors")
    if section is None:
        return MirrorOverrides(path=str(path))
    try:
        parsed = _MirrorsConfig.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("mirrors", *first["loc"]))
        raise InputError(
            first["msg"].removeprefix("Value error, "),
            location=Location(str(path), field=where),
        ) from exc
    location = Location(str(path), field="mirrors")
    return MirrorOverrides(
        normalize_url(parsed.debian, location=location) if parsed.debian else None,
        normalize_url(parsed.debian_security, location=location)
        if parsed.debian_security
        else None,
        path=str(path),
    )


def discover_mirrors(
    *,
    apt_dir: Path = DEFAULT_APT_DIR,
    config_path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Mirrors:
    """The mirrors kiln uses: the config file's, else the host apt sources'."""
    path = config_path if config_path is not None else default_config_path(environ)
    overrides = load_mirror_overrides(path)
    if overrides.debian and overrides.security:
        return _combine(overrides, [], searched=str(path))
    return _combine(overrides, read_host_sources(apt_dir), searched=_describe(apt_dir))


def _describe(apt_dir: Path) -> str:
    names: Iterable[str] = (
        str(apt_dir / "sources.list"),
        str(apt_dir / "sources.list.d" / "*.sources"),
        str(apt_dir / "sources.list.d" / "*.list"),
    )
    return ", ".join(names)
