"""Installed Debian packages from dpkg's database.

Reads the ``status`` file (deb822 stanzas, Debian Policy §5.1 syntax; dpkg's
``Status: <want> <flag> <state>`` field, see dpkg-query(1)) and the per-package
``status.d/<pkg>`` files that distroless-style runtime images carry instead.
Only packages whose state is ``installed`` count; a broken stanza is skipped with a
warning naming the file and line, never silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from debian.deb822 import Deb822

from kiln.debian.version import parse_version
from kiln.errors import InputError
from kiln.inventory.model import Distro, InstalledPackage, deb_purl

_FIELDS = ["Package", "Version", "Architecture", "Source", "Status"]
_FIELD_SET = frozenset(_FIELDS)
_SOURCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?:\s+\((?P<version>[^()\s]+)\))?$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")


def _stanzas(text: str) -> Iterator[tuple[int, list[str], int | None]]:
    """Yield (first line number, wanted lines, first malformed line or None) per stanza.

    Only the fields kiln reads are passed on to the deb822 parser: a status file is
    mostly descriptions and conffiles, and skipping them here keeps a 700-package
    database well under a tenth of a second.
    """
    lines: list[str] = []
    start = 0
    bad: int | None = None
    keep = False
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if not line.strip():
            if start:
                yield start, lines, bad
            lines, bad, start, keep = [], None, 0, False
            continue
        if line.startswith("#"):
            continue
        first = not start
        if first:
            start = number
        if line[0].isspace():  # continuation of the previous field
            if first and bad is None:
                bad = number
            elif keep:
                lines.append(line)
            continue
        key, colon, _ = line.partition(":")
        if not colon:
            bad = number if bad is None else bad
            keep = False
            continue
        keep = key in _FIELD_SET
        if keep:
            lines.append(line)
    if start:
        yield start, lines, bad


def parse_status(
    data: bytes,
    location: str,
    distro: Distro | None,
    warnings: list[str],
    *,
    require_status: bool = True,
) -> list[InstalledPackage]:
    """Installed packages of a dpkg ``status`` (or one ``status.d/`` file).

    ``location`` is the in-target path recorded on each package and used in warnings.
    ``require_status=False`` accepts stanzas without a ``Status:`` field, as
    ``status.d/`` files written by image builders often lack one.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{location}: byte {exc.start} is not UTF-8; not a dpkg status file"
        ) from exc
    packages: list[InstalledPackage] = []
    for line, lines, bad in _stanzas(text):
        where = f"{location}:{line}"
        if bad is not None:
            warnings.append(f"{location}:{bad}: malformed line in stanza, stanza skipped")
            continue
        stanza = Deb822(lines, fields=_FIELDS)
        status = stanza.get("Status")
        if status is None:
            if require_status:
                warnings.append(f"{where}: stanza without Status field, skipped")
                continue
        else:
            words = status.split()
            if len(words) != 3:
                warnings.append(f"{where}: malformed Status {status!r}, stanza skipped")
                continue
            if words[2] != "installed":
                continue  # config-files, half-installed, not-installed ...: not on disk
        package = _package(stanza, where, location, distro, warnings)
        if package is not None:
            packages.append(package)
    return packages


def _package(
    stanza: Deb822,
    where: str,
    location: str,
    distro: Distro | None,
    warnings: list[str],
) -> InstalledPackage | None:
    name = stanza.get("Package", "").strip()
    version = stanza.get("Version", "").strip()
    if not _PACKAGE.match(name):
        warnings.append(f"{where}: missing or invalid Package {name!r}, stanza skipped")
        return None
    if not version:
        warnings.append(f"{where}: package {name} has no Version, skipped")
        return None
    try:
        parse_version(version)
    except InputError:
        warnings.append(f"{where}: package {name} has invalid Version {version!r}, skipped")
        return None
    arch = stanza.get("Architecture", "").strip() or None
    source_name, source_version = name, version
    source = stanza.get("Source", "").strip()
    if source:
        match = _SOURCE.match(source)
        if match is None:
            warnings.append(f"{where}: package {name} has invalid Source {source!r}, ignored")
        else:
            source_name = match["name"]
            source_version = match["version"] or version
    purl = deb_purl(name, version, arch, distro, source_name, source_version)
    return InstalledPackage(
        "deb", name, version, source_name, source_version, arch, purl, (location,)
    )
