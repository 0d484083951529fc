"""``Packages`` indexes in a compact, fast-loading form, and the merged per-arch view.

A suite's ``main/binary-<arch>/Packages`` lists every binary package (Debian Policy §5.3,
https://wiki.debian.org/DebianRepository/Format#A.22Packages.22_Indices); trixie's has
~65k stanzas. Parsing that on every ``kiln lock`` would cost seconds, so each verified
index is converted once into a ``PackagesTable``: the fields kiln uses, packed per
package into one record of a single byte blob, with a name -> record map. The tables of
a distro's suites are merged into a ``MergedUniverse`` (highest dpkg version wins, its
suite recorded) which serialises the same way; records become ``BinaryPackage`` values
lazily, only for the packages a resolver asks about.

The parser here reads only the fields listed in ``_FIELDS``; it follows deb822 syntax
(continuation lines, comments are not allowed in Packages) and is checked against
python-debian's parser in ``tests/debian/test_index.py``. Everything is pure.
"""

from __future__ import annotations

import marshal
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kiln.debian.model import BinaryPackage
from kiln.debian.version import compare_versions
from kiln.errors import RemoteContentError

# Bump when the record layout or the serialised form changes: caches key on it.
FORMAT_VERSION = 1

# Record layout: these Packages fields, in this order, joined by _SEP.
_FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Source",
    "Filename",
    "Size",
    "SHA256",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Multi-Arch",
    "Essential",
    "Priority",
    "Section",
    "Installed-Size",
)
_WANTED = frozenset(_FIELDS)
_REQUIRED = ("Package", "Version", "Architecture", "Filename", "Size", "SHA256")
_SEP = "\x1f"  # ASCII unit separator: never valid inside a control field value
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9A-Za-z][0-9A-Za-z.+~:-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_PATH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~%@/-]*$")
_MAGIC_TABLE = b"kiln-packages-table"
_MAGIC_UNIVERSE = b"kiln-package-universe"


@runtime_checkable
class PackageUniverse(Protocol):
    """The candidate packages of one architecture, as the resolver sees them."""

    arch: str

    def get(self, name: str) -> BinaryPackage | None:
        """The candidate (highest version) real package called ``name``."""
        ...

    def providers(self, name: str) -> Sequence[BinaryPackage]:
        """Candidates whose ``Provides`` names ``name``, sorted by package name."""
        ...

    def names(self) -> Iterable[str]:
        """All real package names (for did-you-mean suggestions)."""
        ...


@dataclass(frozen=True)
class PackagesTable:
    """One verified ``Packages`` index, compacted: name -> packed record (no suite)."""

    arch: str
    component: str
    index: Mapping[str, int]  # package name -> record number
    offsets: Sequence[int]  # record i is blob[offsets[i]:offsets[i + 1]]
    blob: bytes

    def __len__(self) -> int:
        return len(self.index)

    def record(self, name: str) -> list[str] | None:
        i = self.index.get(name)
        if i is None:
            return None
        return self.blob[self.offsets[i] : self.offsets[i + 1]].decode("utf-8").split(_SEP)

    def raw(self, name: str) -> bytes:
        i = self.index[name]
        return self.blob[self.offsets[i] : self.offsets[i + 1]]

    def to_bytes(self) -> bytes:
        return _MAGIC_TABLE + marshal.dumps(
            (
                FORMAT_VERSION,
                self.arch,
                self.component,
                "\n".join(self.index),
                _offsets_to_bytes(self.offsets),
                self.blob,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> PackagesTable:
        """Load a table written by ``to_bytes`` (``ValueError`` if it is not one)."""
        if bytes(data[: len(_MAGIC_TABLE)]) != _MAGIC_TABLE:
            raise ValueError("not a kiln packages table")
        try:
            # Our own cache file, integrity-checked by the cache before it gets here.
            loaded = marshal.loads(data[len(_MAGIC_TABLE) :])  # noqa: S302
            version, arch, component, names_text, offsets_bytes, blob = loaded
        except (EOFError, TypeError, ValueError) as exc:
            raise ValueError(f"truncated or corrupt packages table: {exc}") from exc
        names = names_text.split("\n") if names_text else []
        offsets = _offsets_from_bytes(offsets_bytes)
        if version != FORMAT_VERSION or len(offsets) != len(names) + 1:
            raise ValueError("packages table of another format or inconsistent")
        return cls(arch, component, {n: i for i, n in enumerate(names)}, offsets, blob)


def _offsets_to_bytes(offsets: Sequence[int]) -> bytes:
    return array("Q", offsets).tobytes()


def _offsets_from_bytes(data: bytes | memoryview) -> Sequence[int]:
    if len(data) % 8:
        raise ValueError("offset table is truncated")
    return array("Q", data)


def parse_packages(
    data: bytes | str, *, arch: str, source: str, component: str = "main"
) -> PackagesTable:
    """Parse a (verified, decompressed) ``Packages`` index for ``arch`` into a table.

    Keeps the fields in ``_FIELDS``; when a name appears more than once the highest
    version wins. Stanzas for other architectures are refused, as is any stanza missing
    a required field or with an unsafe ``Filename``: the error names the stanza's line.
    """
    try:
        text = bytes(data).decode("utf-8") if not isinstance(data, str) else data
    except UnicodeDecodeError as exc:
        raise RemoteContentError(
            f"{source}: byte {exc.start} of the Packages index is not UTF-8"
        ) from exc
    if _SEP in text:
        raise RemoteContentError(f"{source}: control character U+001F in the Packages index")
    records: dict[str, str] = {}
    versions: dict[str, str] = {}
    line_number = 1
    for chunk in text.split("\n\n"):
        start = line_number
        line_number += chunk.count("\n") + 2
        stanza = chunk.strip("\n")
        if not stanza:
            continue
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t"):
                if key in _WANTED:
                    fields[key] += " " + line.strip()
                continue
            key, colon, value = line.partition(":")
            if not colon:
                raise RemoteContentError(
                    f"{source}:{start}: malformed line {line[:60]!r} in stanza "
                    f"(expected 'Field: value')"
                )
            if key in _WANTED:
                fields[key] = value.strip()
        if not fields and stanza.lstrip().startswith("#"):
            continue
        name = _check_stanza(fields, arch=arch, source=f"{source}:{start}")
        version = fields["Version"]
        previous = versions.get(name)
        if previous is not None and compare_versions(version, previous) <= 0:
            continue
        versions[name] = version
        records[name] = _SEP.join([fields.get(f, "") for f in _FIELDS] + [component])
    return _table_from_records(arch, component, records)


def _check_stanza(fields: Mapping[str, str], *, arch: str, source: str) -> str:
    for required in _REQUIRED:
        if not fields.get(required):
            package = fields.get("Package", "?")
            raise RemoteContentError(f"{source}: stanza {package!r} has no {required} field")
    name = fields["Package"]
    where = f"{source}: package {name!r}"
    if not _NAME_RE.match(name):
        raise RemoteContentError(f"{where}: invalid package name")
    if not _VERSION_RE.match(fields["Version"]):
        raise RemoteContentError(f"{where}: invalid Version {fields['Version']!r}")
    if fields["Architecture"] not in (arch, "all"):
        raise RemoteContentError(
            f"{where}: Architecture {fields['Architecture']!r} in the {arch} index"
        )
    if not fields["Size"].isdigit():
        raise RemoteContentError(f"{where}: Size {fields['Size']!r} is not a number")
    if not _SHA256_RE.match(fields["SHA256"]):
        raise RemoteContentError(f"{where}: SHA256 {fields['SHA256']!r} is not a sha256 digest")
    filename = fields["Filename"]
    if not _PATH_RE.match(filename) or ".." in filename.split("/"):
        raise RemoteContentError(
            f"{where}: unsafe Filename {filename!r}",
            hint="a pool path must be relative and stay inside the mirror",
        )
    installed = fields.get("Installed-Size", "")
    if installed and not installed.isdigit():
        raise RemoteContentError(f"{where}: Installed-Size {installed!r} is not a number")
    return name


def _table_from_records(arch: str, component: str, records: Mapping[str, str]) -> PackagesTable:
    index: dict[str, int] = {}
    offsets = [0]
    chunks: list[bytes] = []
    position = 0
    for i, (name, record) in enumerate(records.items()):
        encoded = record.encode("utf-8")
        chunks.append(encoded)
        position += len(encoded)
        offsets.append(position)
        index[name] = i
    return PackagesTable(arch, component, index, offsets, b"".join(chunks))


def _provided_names(provides: str) -> list[str]:
    names: list[str] = []
    for part in provides.split(","):
        name = part.strip().split("(", 1)[0].strip().split(":", 1)[0]
        if name:
            names.append(name)
    return names


def package_from_record(fields: list[str], suite: str) -> BinaryPackage:
    """A package from one record of a compact ``PackagesTable`` (its fields, split)."""
    (
        name,
        version,
        architecture,
        source_field,
        filename,
        size,
        sha256,
        depends,
        pre_depends,
        provides,
        conflicts,
        breaks,
        replaces,
        multi_arch,
        essential,
        priority,
        section,
        installed_size,
        component,
    ) = fields
    source, source_version = name, version
    if source_field:
        source_name, _, rest = source_field.partition("(")
        source = source_name.strip()
        if rest:
            source_version = rest.rstrip(")").strip()
    return BinaryPackage(
        name=name,
        version=version,
        architecture=architecture,
        source=source,
        source_version=source_version,
        filename=filename,
        size=int(size),
        sha256=sha256,
        suite=suite,
        component=component,
        depends=depends,
        pre_depends=pre_depends,
        provides=provides,
        conflicts=conflicts,
        breaks=breaks,
        replaces=replaces,
        multi_arch=multi_arch.lower() or "no",
        essential=essential.lower() == "yes",
        priority=priority or "optional",
        section=section,
        installed_size=int(installed_size) if installed_size else 0,
    )


class MergedUniverse:
    """The candidate packages of one arch over a distro's suites (a ``PackageUniverse``).

    Immutable after construction; ``BinaryPackage`` values are built on first use and
    memoised. Names and virtual names are kept sorted (binary search), so loading needs
    no dict of 65k entries; serialises to bytes for the cache with ``to_bytes`` and
    ``from_bytes``.
    """

    __slots__ = (
        "_blob",
        "_memo",
        "_names",
        "_offsets",
        "_provider_lists",
        "_suites",
        "_virtual_text",
        "arch",
    )

    def __init__(
        self,
        arch: str,
        *,
        suites: Sequence[str],
        names: Sequence[str],
        offsets: Sequence[int],
        blob: bytes,
        provides: Mapping[str, str] | tuple[str, str],
    ) -> None:
        """``names`` sorted; record i is ``blob[offsets[i]:offsets[i+1]]``.

        ``provides`` maps a virtual name to its providers' names joined by commas, or is
        the pair of newline-joined texts (sorted virtual names, their providers) that
        ``to_bytes`` writes, split on first use.
        """
        if len(offsets) != len(names) + 1:
            raise ValueError("offsets must have one entry more than names")
        self.arch = arch
        self._suites = tuple(suites)
        self._names = names
        self._offsets = offsets
        self._blob = blob
        self._virtual_text: tuple[str, str] | None = None
        self._provider_lists: tuple[list[str], list[str]] | None = None
        if isinstance(provides, tuple):
            self._virtual_text = provides
        else:
            keys = sorted(provides)
            self._provider_lists = (keys, [provides[k] for k in keys])
        self._memo: dict[str, BinaryPackage] = {}

    @property
    def suites(self) -> tuple[str, ...]:
        return self._suites

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __repr__(self) -> str:
        return f"MergedUniverse(arch={self.arch!r}, suites={self._suites!r}, packages={len(self)})"

    def _find(self, name: str) -> int | None:
        i = bisect_left(self._names, name)
        if i < len(self._names) and self._names[i] == name:
            return i
        return None

    def get(self, name: str) -> BinaryPackage | None:
        package = self._memo.get(name)
        if package is not None:
            return package
        i = self._find(name)
        if i is None:
            return None
        raw = self._blob[self._offsets[i] : self._offsets[i + 1]].decode("utf-8")
        suite_number, _, record = raw.partition(_SEP)
        package = package_from_record(record.split(_SEP), self._suites[int(suite_number)])
        self._memo[name] = package
        return package

    def _lists(self) -> tuple[list[str], list[str]]:
        if self._provider_lists is None:
            virtuals, providers = self._virtual_text or ("", "")
            self._provider_lists = (
                virtuals.split("\n") if virtuals else [],
                providers.split("\n") if virtuals else [],
            )
            self._virtual_text = None
        return self._provider_lists

    def providers(self, name: str) -> Sequence[BinaryPackage]:
        keys, values = self._lists()
        i = bisect_left(keys, name)
        if i == len(keys) or keys[i] != name:
            return ()
        found = (self.get(p) for p in values[i].split(","))
        return tuple(p for p in found if p is not None)

    def names(self) -> Iterable[str]:
        return iter(self._names)

    def virtual_names(self) -> Iterable[str]:
        """Every name some candidate provides, sorted."""
        return iter(self._lists()[0])

    def to_bytes(self) -> bytes:
        virtuals, providers = self._lists()
        return _MAGIC_UNIVERSE + marshal.dumps(
            (
                FORMAT_VERSION,
                self.arch,
                "\n".join(self._suites),
                "\n".join(self._names),
                _offsets_to_bytes(self._offsets),
                self._blob,
                "\n".join(virtuals),
                "\n".join(providers),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> MergedUniverse:
        """Load a universe written by ``to_bytes`` (``ValueError`` if it is not one)."""
        if bytes(data[: len(_MAGIC_UNIVERSE)]) != _MAGIC_UNIVERSE:
            raise ValueError("not a kiln package universe")
        try:
            # Our own cache file, integrity-checked by the cache before it gets here.
            loaded = marshal.loads(data[len(_MAGIC_UNIVERSE) :])  # noqa: S302
            version, arch, suites, names, offsets, blob, virtuals, providers = loaded
        except (EOFError, TypeError, ValueError) as exc:
            raise ValueError(f"truncated or corrupt package universe: {exc}") from exc
        if version != FORMAT_VERSION:
            raise ValueError("package universe of another format")
        return cls(
            arch,
            suites=suites.split("\n"),
            names=names.split("\n") if names else [],
            offsets=_offsets_from_bytes(offsets),
            blob=blob,
            provides=(virtuals, providers),
        )


def merge_tables(arch: str, tables: Sequence[tuple[str, PackagesTable]]) -> MergedUniverse:
    """Merge per-suite tables (lowest precedence first): the highest version wins.

    On equal versions the earlier suite is kept (the same upstream build is served by
    both; the main archive is the more widely mirrored).
    """
    winner: dict[str, int] = {}  # name -> number of the table holding the candidate
    for number, (_suite, table) in enumerate(tables):
        if table.arch != arch:
            raise ValueError(f"table for {table.arch} merged into the {arch} universe")
        for name in table.index:
            current = winner.get(name)
            if (
                current is None
                or compare_versions(
                    _field(table.raw(name), 1), _field(tables[current][1].raw(name), 1)
                )
                > 0
            ):
                winner[name] = number
    offsets = [0]
    chunks: list[bytes] = []
    position = 0
    provides: dict[str, set[str]] = {}
    provides_at = _FIELDS.index("Provides")
    names = sorted(winner)
    prefixes = [f"{n}{_SEP}".encode() for n in range(len(tables))]
    for name in names:
        number = winner[name]
        raw = tables[number][1].raw(name)
        chunks.append(prefixes[number])
        chunks.append(raw)
        position += len(prefixes[number]) + len(raw)
        offsets.append(position)
        provided = _field(raw, provides_at)
        if provided:
            for virtual in _provided_names(provided):
                provides.setdefault(virtual, set()).add(name)
    return MergedUniverse(
        arch,
        suites=[s for s, _ in tables],
        names=names,
        offsets=offsets,
        blob=b"".join(chunks),
        provides={k: ",".join(sorted(v)) for k, v in sorted(provides.items())},
    )


def _field(raw: bytes, position: int) -> str:
    return raw.split(_SEP.encode(), position + 1)[position].decode("utf-8")
