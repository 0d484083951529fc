"""Installed Debian packages from dpkg's database.

Reads the ``status`` file (deb822 stanzas, Debian Policy §5.1 syntax; dpkg's
``Status: <want> <flag> <state>`` field, see dpkg-query(1)) and the per-package
``status.d/<pkg>`` files that distroless-style runtime images carry instead.
Only packages whose state is ``installed`` count; a broken stanza is skipped with a
warning naming the file and line, never silently.

The five fields kiln reads are taken from each stanza here, by python-debian's own
field-line rule (``Deb822._new_field_re``) and its continuation rule, rather than by
building a ``Deb822`` per stanza: that and importing ``debian.deb822`` (which pulls in
charset_normalizer and email) were a third of a 700-package inventory, and python-debian
has no faster mode for a status file without python3-apt. tests/inventory/test_dpkg.py
checks the values against ``Deb822`` on this machine's status file and on hostile input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from kiln.debian.version import parse_version
from kiln.errors import InputError
from kiln.inventory.model import InstalledPackage, OsRelease, deb_purl, parse_kiln_fixes

_FIELDS = ["Package", "Version", "Architecture", "Source", "Status", "Kiln-Fixes"]
_FIELD_SET = frozenset(_FIELDS)
_SOURCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?:\s+\((?P<version>[^()\s]+)\))?$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
# A field line as python-debian reads it (deb822.Deb822._new_field_re): key, value.
_FIELD_LINE = re.compile(r"^([^: \t\n\r\f\v]+)\s*:\s*((?:\S+(?:\s+\S+)*)?)\s*$")


def _stanzas(text: str | Iterable[str]) -> Iterator[tuple[int, list[str], int | None]]:
    """Yield (first line number, wanted lines, first malformed line or None) per stanza.

    Only the lines of the fields kiln reads are kept (a status file is mostly
    descriptions and conffiles); ``stanza_fields`` reads them.
    """
    lines: list[str] = []
    start = 0
    bad: int | None = None
    keep = False
    text_lines = text.splitlines(keepends=True) if isinstance(text, str) else text
    for number, line in enumerate(text_lines, start=1):
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


def stanza_fields(lines: list[str]) -> dict[str, str]:
    """The wanted fields of one stanza's kept lines, valued as ``Deb822`` values them.

    A field's value is its first line stripped, then each continuation line (without
    its line break) after a newline; a repeated field keeps its last value.
    """
    fields: dict[str, str] = {}
    key: str | None = None
    for raw in lines:
        line = raw.strip("\r\n")
        match = _FIELD_LINE.match(line)
        if match is not None:
            key = match[1] if match[1] in _FIELD_SET else None
            if key is not None:
                fields[key] = match[2]
        elif key is not None and line[:1].isspace() and not line.isspace():
            fields[key] += "\n" + line
    return fields


# A status file is read line by line (only the six fields are kept), so memory grows
# with the number of packages, not the file: 100 MB of status is ~40 MB of Python.
MAX_STATUS_BYTES = 1024 * 1024 * 1024  # 1 GiB; Debian's largest real ones are ~50 MB
_READ_BLOCK = 1024 * 1024


def parse_status(
    data: bytes,
    location: str,
    distro: OsRelease | None,
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
        raise _not_utf8(location, exc.start) from exc
    return _packages(text.splitlines(keepends=True), location, distro, warnings, require_status)


def read_status_file(
    path: Path,
    location: str,
    distro: OsRelease | None,
    warnings: list[str],
    *,
    require_status: bool = True,
) -> list[InstalledPackage]:
    """``parse_status`` of a file, streamed: the file is never held in memory whole."""
    size = path.stat().st_size
    if size > MAX_STATUS_BYTES:
        raise InputError(
            f"{location}: {size} bytes is over the {MAX_STATUS_BYTES} byte limit "
            "for a dpkg status file"
        )
    with path.open("rb") as handle:
        return _packages(
            _decoded_lines(handle, location), location, distro, warnings, require_status
        )


def _not_utf8(location: str, offset: int) -> InputError:
    return InputError(f"{location}: byte {offset} is not UTF-8; not a dpkg status file")


def _decoded_lines(handle: BinaryIO, location: str) -> Iterator[str]:
    """The lines ``str.splitlines(keepends=True)`` gives for the decoded file, one by one.

    Blocks are cut after a ``\n``: it is one of ``splitlines``' breaks and ``\r\n``
    stays whole, so a streamed file reads exactly as ``parse_status`` of its bytes.
    """
    offset = 0
    rest = b""
    while True:
        block = handle.read(_READ_BLOCK)
        data = rest + block
        cut = data.rfind(b"\n") + 1 if block else len(data)  # whole lines; all at the end
        data, rest = data[:cut], data[cut:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _not_utf8(location, offset + exc.start) from exc
        offset += len(data)
        yield from text.splitlines(keepends=True)
        if not block:
            return


def _packages(
    text_lines: Iterable[str],
    location: str,
    distro: OsRelease | None,
    warnings: list[str],
    require_status: bool,
) -> list[InstalledPackage]:
    packages: list[InstalledPackage] = []
    for line, lines, bad in _stanzas(text_lines):
        where = f"{location}:{line}"
        if bad is not None:
            warnings.append(f"{location}:{bad}: malformed line in stanza, stanza skipped")
            continue
        stanza = stanza_fields(lines)
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
    stanza: dict[str, str],
    where: str,
    location: str,
    distro: OsRelease | None,
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
    fixes = parse_kiln_fixes(stanza.get("Kiln-Fixes", ""), where, warnings)
    return InstalledPackage(
        "deb", name, version, source_name, source_version, arch, purl, (location,), fixes
    )
