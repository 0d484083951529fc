"""VEX ``not_affected`` with evidence: a CVE whose fix only touches programs the image lacks.

Issue #16, step 3c of the remediation loop. kiln's vulnerability data names the *source*
package of a CVE, never the binary package or file, so "the vulnerable component is not
in the image" is never read off a feed: it is derived from the fix itself. The fix (a
DEP-3 patch from unstable's ``debian/patches``, or an upstream commit's diff) names the
source files it changes; the source's binary packages' file lists (their ``.deb``
``data.tar`` members, fetched through the signed path and checked against the index's
sha256) say which program each binary ships; the image's lock says which binaries it
installs. A false ``not_affected`` hides a real vulnerability, so when in doubt there is
no statement. The rules, all of which must hold (``decide_component``):

1. The fix's diff names at least one file, and every path is safe (no ``..``, not
   absolute). Files of tests and documentation (a ``test``/``tests``/``doc``/``docs``/
   ``man``/``examples`` directory, ``.md``/``.rst``/``.txt``/``.test``/man page
   suffixes, ``NEWS``/``ChangeLog``) are set aside: they are not shipped code. Everything else is
   a *code file*; a fix with no code file gives no statement.
2. Each code file is a program's own source: a C/C++ or script file (``.c``, ``.cc``,
   ``.cpp``, ``.cxx``, ``.py``, ``.pl``, ``.sh``) whose name without suffix (the
   *stem*, at least three characters) is the file name of a program that some binary
   package of the source ships in a program directory (``usr/bin``, ``usr/sbin``,
   ``bin``, ``sbin``, ``usr/games``, ``usr/libexec/...``). A header, a build file, a
   ``debian/`` file, a file whose stem names no program of the source, or a file of
   another kind cannot be mapped: no statement.
3. The file is not compiled into a library the image has: no file shipped by any
   binary of the source that the image installs has the stem in its name (``lib/lz4.c``
   names the ``lz4`` program *and* ``liblz4.so.1``: no statement), and the
   ``@@ ... @@`` function names of the fix's hunks in that file do not occur as strings
   in those installed files (an exported function of the changed file in a library
   that ships it: no statement).
4. No binary package that ships the program is installed in any variant on any
   architecture of the image's lock.
5. No file anywhere in the image (every installed package of every variant, and the
   spec's own ``paths``) has the stem as its file name: the program is not there under
   another package either (an alternative, a multi-call binary's link).

The verdict is ``component_not_present`` with the evidence: the changed files, each one's
mapping (file -> program -> binary package, not installed), the sha256 of the image's
sorted file list, the file names looked for, and the source's binaries with their
versions. ``vulnerable_code_not_present`` (the code the fix changes is nowhere in the
image's source) is ``kiln.research.codeabsent``'s: it needs the unpacked source tree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from kiln.debian.deb import read_deb
from kiln.errors import InputError, Location
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import write_openvex

if TYPE_CHECKING:
    from kiln.debian.model import BinaryPackage
    from kiln.pipeline.archive import ArchiveAccess
    from kiln.resolve.lockfile import Lock

JUSTIFICATION = "component_not_present"
MAX_DIFF = 8 << 20  # the recipe loader's bound on a patch
MAX_FUNCTION_BYTES = 64 << 20  # installed files read for rule 3's function names

_DOC_OR_TEST = re.compile(
    r"(?i)(^|/)(tests?|testing|testsuite|docs?|man|examples?)(/|$)"
    r"|\.(md|rst|txt|[1-9]|html|texi|pod|test)$|(^|/)(news|changelog|changes|readme)[^/]*$"
)
_PROGRAM_SOURCE = frozenset({".c", ".cc", ".cpp", ".cxx", ".py", ".pl", ".sh"})
_PROGRAM_DIRS = ("usr/bin/", "usr/sbin/", "bin/", "sbin/", "usr/games/", "usr/libexec/")
_HUNK_FUNCTION = re.compile(r"^@@ [^@]* @@\s*(.*)$")
_IDENTIFIER = re.compile(r"([A-Za-z_][A-Za-z0-9_]{3,})\s*\(")
_MIN_STEM = 3


def test_or_doc(path: str) -> bool:
    """Whether a changed file is a test's or documentation (rule 1: set aside)."""
    return bool(_DOC_OR_TEST.search(path))


class Verdict(Protocol):
    """What a VEX statement is made of (``ComponentVerdict``, and
    ``kiln.research.codeabsent.CodeVerdict`` for ``vulnerable_code_not_present``)."""

    @property
    def image(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def cve(self) -> str: ...
    @property
    def fix_origin(self) -> str: ...
    @property
    def statement(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def installed(self) -> tuple[str, ...]: ...
    @property
    def justification(self) -> str | None: ...
    def impact_statement(self) -> str: ...
    def evidence(self) -> list[str]: ...


@dataclass(frozen=True)
class ChangedFile:
    """One file a fix changes, with the function names of its hunks (``@@`` context)."""

    path: str
    functions: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``test-or-doc`` (set aside) or ``code``."""
        return "test-or-doc" if test_or_doc(self.path) else "code"


@dataclass(frozen=True)
class FileMapping:
    """How one changed file maps onto the image (``program`` empty: it does not)."""

    changed: str
    kind: str  # code | test-or-doc
    program: str = ""  # usr/bin/tiffcrop
    packages: tuple[str, ...] = ()  # the binaries that ship it
    reason: str = ""  # why it is not present, or why it cannot be mapped
    mapped: bool = False  # True: provably not in the image

    def line(self) -> str:
        """The evidence line for this file."""
        if self.kind != "code":
            return f"{self.changed}: test or documentation, not shipped code"
        if self.mapped:
            return (
                f"{self.changed} -> /{self.program} (binary package "
                f"{', '.join(self.packages)}): {self.reason}"
            )
        return f"{self.changed}: {self.reason}"


@dataclass(frozen=True)
class ComponentVerdict:
    """The decision for one (image, source, CVE): a statement or none, with the evidence."""

    image: str
    source: str
    cve: str
    fix_origin: str  # where the fix's diff came from
    statement: bool  # True: component_not_present holds
    reason: str  # one sentence: why (or why not)
    mappings: tuple[FileMapping, ...] = ()
    image_files_sha256: str = ""  # of the image's sorted file list
    image_files: int = 0
    looked_for: tuple[str, ...] = ()  # file names searched for in the image
    installed: tuple[str, ...] = ()  # the source's binaries the image installs
    binaries: tuple[str, ...] = ()  # every binary of the source read, "name version"

    @property
    def justification(self) -> str | None:
        """OpenVEX's justification when there is a statement."""
        return JUSTIFICATION if self.statement else None

    def impact_statement(self) -> str:
        """One paragraph a VEX reader understands without the evidence list."""
        programs = sorted({f"/{m.program}" for m in self.mappings if m.mapped})
        return (
            f"The fix for {self.cve} in Debian source {self.source} ({self.fix_origin}) "
            f"changes only the source of {', '.join(programs)}, which no package installed "
            f"in {self.image} ships; the image has none of {', '.join(self.looked_for)}."
        )

    def evidence(self) -> list[str]:
        """Every evidence line: the mappings, the file list digest, what was looked for."""
        return [
            *(m.line() for m in self.mappings),
            f"image file list: {self.image_files} paths, sha256 {self.image_files_sha256}",
            f"looked for in the image: {', '.join(self.looked_for) or '(nothing)'}",
            f"installed binaries of {self.source}: {', '.join(self.installed) or '(none)'}",
            f"binaries of {self.source} read: {', '.join(self.binaries)}",
        ]


def _safe(raw: str, where: str) -> str | None:
    path = raw.split("\t", 1)[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        path = path[2:]
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\x00" in path:
        raise InputError(f"the diff names an unsafe path {path[:100]!r}", location=Location(where))
    return str(pure)


def changed_files(diff: bytes, *, where: str = "the fix's diff") -> list[ChangedFile]:
    """The files a unified diff changes (old and new names), with its hunks' functions."""
    if len(diff) > MAX_DIFF:
        raise InputError(f"the diff is over {MAX_DIFF} bytes", location=Location(where))
    functions: dict[str, list[str]] = {}
    current: str | None = None
    lines = diff.decode("utf-8", "replace").splitlines()
    for number, line in enumerate(lines):
        if line.startswith("--- ") and number + 1 < len(lines):
            nxt = lines[number + 1]
            if not nxt.startswith("+++ "):
                continue
            old, new = _safe(line[4:], where), _safe(nxt[4:], where)
            for path in (old, new):
                if path is not None:
                    functions.setdefault(path, [])
            current = new or old
            continue
        hunk = _HUNK_FUNCTION.match(line)
        if hunk and current is not None:
            name = _IDENTIFIER.search(hunk.group(1))
            if name and name.group(1) not in functions[current]:
                functions[current].append(name.group(1))
    return [ChangedFile(path, tuple(names)) for path, names in functions.items()]


def _stem(path: str) -> str | None:
    pure = PurePosixPath(path)
    if pure.suffix not in _PROGRAM_SOURCE or path.startswith("debian/"):
        return None
    return pure.stem if len(pure.stem) >= _MIN_STEM else None


def _programs(files: Iterable[str], name: str) -> list[str]:
    return sorted(f for f in files if f.startswith(_PROGRAM_DIRS) and PurePosixPath(f).name == name)


def _map_file(
    changed: ChangedFile,
    *,
    source_files: Mapping[str, Iterable[str]],
    installed: Mapping[str, Iterable[str]],
    image_names: frozenset[str],
    strings: Mapping[str, bytes] | None,
    anywhere: frozenset[str],
) -> FileMapping:
    """Rules 2 to 5 for one code file (see the module docstring)."""
    path = changed.path
    stem = _stem(path)
    if stem is None:
        return FileMapping(path, "code", reason="not a program's own source file (rule 2)")
    shipped = {pkg: _programs(files, stem) for pkg, files in source_files.items()}
    shipped = {pkg: found for pkg, found in shipped.items() if found}
    if not shipped:
        return FileMapping(path, "code", reason=f"no binary of the source ships a program {stem!r}")
    program = sorted({p for found in shipped.values() for p in found})[0]
    packages = tuple(sorted(shipped))
    in_image = sorted(set(packages) & (set(installed) | anywhere))
    if in_image:
        return FileMapping(
            path, "code", program, packages, f"{', '.join(in_image)} is installed (rule 4)"
        )
    for pkg, files in sorted(installed.items()):
        for name in files:
            if stem in PurePosixPath(name).name:
                return FileMapping(
                    path, "code", program, packages,
                    f"installed {pkg} ships /{name}, whose name contains {stem!r}: the file "
                    "may be built into it (rule 3)",
                )  # fmt: skip
    if changed.functions and strings is None:
        return FileMapping(
            path, "code", program, packages,
            "the installed files of the source were too large to look for the fix's "
            "functions in (rule 3)",
        )  # fmt: skip
    for function in changed.functions:
        for where, data in sorted((strings or {}).items()):
            if b"\0" + function.encode() + b"\0" in data:
                return FileMapping(
                    path, "code", program, packages,
                    f"the fix's function {function} is a string in installed /{where} "
                    "(rule 3)",
                )  # fmt: skip
    if stem in image_names:
        return FileMapping(
            path, "code", program, packages, f"the image has a file named {stem!r} (rule 5)"
        )
    return FileMapping(
        path, "code", program, packages,
        f"not installed in any variant, no file named {stem!r} in the image", mapped=True,
    )  # fmt: skip


def decide_component(
    *,
    image: str,
    source: str,
    cve: str,
    fix_origin: str,
    diffs: Sequence[tuple[str, bytes]],
    source_files: Mapping[str, Iterable[str]],
    installed: Mapping[str, Iterable[str]],
    image_files: Iterable[str],
    strings: Mapping[str, bytes] | None,
    installed_anywhere: Iterable[str] = (),
    binaries: Sequence[str] = (),
) -> ComponentVerdict:
    """Does ``component_not_present`` hold for ``cve`` of ``source`` in ``image``?

    ``diffs``: (name, unified diff) of the fix. ``source_files``: every binary package
    of the source -> its file paths (relative, ``usr/bin/tiffcrop``). ``installed``: the
    source's binaries the image installs -> their files. ``image_files``: every path in
    the image. ``strings``: installed files of the source -> their bytes (rule 3's
    function names). Pure: the rules of the module docstring on these lists.
    """
    changed: list[ChangedFile] = []
    for name, diff in diffs:
        changed.extend(changed_files(diff, where=name))
    files = sorted(set(image_files))
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
    names = frozenset(PurePosixPath(f).name for f in files)
    installed_lists = {pkg: list(found) for pkg, found in installed.items()}
    mappings = tuple(
        FileMapping(c.path, "test-or-doc")
        if c.kind != "code"
        else _map_file(
            c,
            source_files=source_files,
            installed=installed_lists,
            image_names=names,
            strings=strings,
            anywhere=frozenset(installed_anywhere),
        )
        for c in changed
    )
    code = [m for m in mappings if m.kind == "code"]
    unmapped = [m for m in code if not m.mapped]
    looked_for = tuple(sorted({PurePosixPath(m.program).name for m in code if m.program}))
    if not code:
        reason = "the fix changes no shipped code (only tests or documentation, or nothing)"
    elif unmapped:
        reason = f"{unmapped[0].changed}: {unmapped[0].reason}"
    else:
        reason = "every code file the fix changes is a program the image does not have"
    return ComponentVerdict(
        image=image, source=source, cve=cve, fix_origin=fix_origin,
        statement=bool(code) and not unmapped, reason=reason, mappings=mappings,
        image_files_sha256=digest, image_files=len(files), looked_for=looked_for,
        installed=tuple(sorted(installed)), binaries=tuple(binaries),
    )  # fmt: skip


# ------------------------------------------------------- the real lists, from the archive


@dataclass
class ImageFiles:
    """What an image's lock installs, read from its verified ``.deb`` files."""

    lock: Lock
    installed: dict[str, list[str]] = field(default_factory=dict)  # binary -> files
    sources: dict[str, str] = field(default_factory=dict)  # binary -> source
    versions: dict[str, str] = field(default_factory=dict)  # source -> locked version
    extra: list[str] = field(default_factory=list)  # the spec's own paths
    everywhere: frozenset[str] = frozenset()  # binaries in any variant on any arch

    def files(self) -> list[str]:
        """Every path in the image (every variant), sorted."""
        return sorted({f for found in self.installed.values() for f in found} | set(self.extra))


def _members(
    deb: Path, *, keep: frozenset[str] = frozenset()
) -> tuple[list[str], dict[str, bytes]]:
    """The paths of a verified .deb's data members, and the contents of ``keep``'s files."""
    package = read_deb(deb, read_content=lambda m: m.path in keep)
    return [m.path for m in package.members], {
        p: package.contents[p] for p in keep if p in package.contents
    }


def image_files(
    lock: Lock, archive: ArchiveAccess, *, arch: str, extra: Sequence[str] = ()
) -> ImageFiles:
    """Every installed package's file list (every variant, on ``arch``) from the lock's
    .debs, each fetched (or found in kiln's cache) and checked against the lock's sha256."""
    from kiln.debian import get_distro  # noqa: PLC0415
    from kiln.pipeline.lock import locked_to_binary  # noqa: PLC0415

    seen: dict[str, BinaryPackage] = {}
    result = ImageFiles(lock, extra=[p.lstrip("/") for p in extra])
    everywhere: set[str] = set()
    for variant, per_arch in lock.variants.items():
        for one_arch in per_arch:
            everywhere.update(p.name for p in lock.packages(variant, one_arch))
        if arch not in per_arch:
            continue
        for locked in lock.packages(variant, arch):
            seen.setdefault(locked.name, locked_to_binary(locked))
            result.sources[locked.name] = locked.source
            result.versions[locked.source] = locked.source_version
    result.everywhere = frozenset(everywhere)
    packages = sorted(seen.values(), key=lambda p: p.name)
    paths = archive.fetch(get_distro(lock.distro), packages)
    for package, path in zip(packages, paths, strict=True):
        result.installed[package.name] = _members(path)[0]
    return result


@dataclass(frozen=True)
class SourceBinaries:
    """Every binary of one source on one architecture, with its file list."""

    files: dict[str, list[str]]  # binary -> paths
    versions: tuple[str, ...]  # "name version"
    missing: tuple[str, ...]  # binaries the Sources entry names that the index lacks


def source_binaries(
    source: str, binaries: Sequence[str], archive: ArchiveAccess, *, distro: str, arch: str
) -> SourceBinaries:
    """The file lists of ``binaries`` (a Sources entry's ``Binary:``) as the archive has
    them for ``arch``: the candidate of each that this ``source`` builds, its .deb
    fetched and checked against the signed index."""
    from kiln.debian import get_distro  # noqa: PLC0415

    release = get_distro(distro)
    universe = archive.snapshot(release, [arch]).universe(arch)
    found: list[BinaryPackage] = []
    missing: list[str] = []
    for name in sorted(set(binaries)):
        package = universe.get(name)
        if package is None or package.source != source:
            missing.append(name)
            continue
        found.append(package)
    paths = archive.fetch(release, found)
    files = {p.name: _members(path)[0] for p, path in zip(found, paths, strict=True)}
    return SourceBinaries(files, tuple(f"{p.name} {p.version}" for p in found), tuple(missing))


def installed_strings(
    image: ImageFiles, source: str, archive: ArchiveAccess, *, arch: str
) -> dict[str, bytes] | None:
    """The regular files the image's binaries of ``source`` install (rule 3 greps them
    for the fix's function names); None when they are over ``MAX_FUNCTION_BYTES``."""
    from kiln.debian import get_distro  # noqa: PLC0415
    from kiln.pipeline.lock import locked_to_binary  # noqa: PLC0415

    wanted = {
        p.name: locked_to_binary(p)
        for variant, per_arch in image.lock.variants.items()
        if arch in per_arch
        for p in image.lock.packages(variant, arch)
        if p.source == source
    }
    packages = sorted(wanted.values(), key=lambda p: p.name)
    paths = archive.fetch(get_distro(image.lock.distro), packages)
    strings: dict[str, bytes] = {}
    total = 0
    for path in paths:
        package = read_deb(path, read_content=lambda m: m.is_file and m.size <= MAX_FUNCTION_BYTES)
        for name, data in package.contents.items():
            total += len(data)
            if total > MAX_FUNCTION_BYTES:
                return None
            strings[name] = data
    return strings


# ------------------------------------------------------------------ the OpenVEX file


def vex_statements(verdicts: Sequence[Verdict], *, timestamp: str) -> list[VexStatement]:
    """One ``not_affected`` statement per verdict that holds, about every installed binary
    of its source (``pkg:deb/debian/<binary>``), the evidence in the impact statement."""
    return [
        VexStatement(
            vulnerability=v.cve,
            aliases=frozenset(),
            products=tuple(f"pkg:deb/debian/{b}" for b in v.installed) or (f"pkg:oci/{v.image}",),
            status="not_affected",
            justification=v.justification,
            impact_statement=f"{v.impact_statement()} Evidence: {'; '.join(v.evidence())}",
            timestamp=timestamp,
        )
        for v in sorted(verdicts, key=lambda v: (v.cve, v.source))
        if v.statement
    ]


def vex_document(verdicts: Sequence[Verdict], *, author: str, timestamp: str) -> bytes:
    """``vex/<image>.openvex.json``: the statements as an OpenVEX v0.2.0 document (indented
    JSON, keys sorted, for a reviewer's diff)."""
    import json  # noqa: PLC0415

    statements = vex_statements(verdicts, timestamp=timestamp)
    if not statements:
        raise InputError("no verdict holds: there is no VEX statement to write")
    document = write_openvex(statements, author=author, timestamp=timestamp)
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
