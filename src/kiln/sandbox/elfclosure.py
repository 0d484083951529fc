"""ELF closure of an unpacked image: every program can be loaded by the image alone.

Checked on the rootfs (no program runs): for every dynamically linked program (an ELF
file with a ``PT_INTERP``) anywhere in the image, its interpreter exists, and every
``DT_NEEDED`` of it and, transitively, of the libraries it loads resolves the way
ld.so(8) searches: ``DT_RPATH`` (without ``DT_RUNPATH``), ``DT_RUNPATH`` (``$ORIGIN``
expanded), the directories of ``/etc/ld.so.conf.d/*.conf``, then the multiarch and
default directories. Symlinks in the program directories must not dangle. Shared
objects that no program loads (plugins a host program ``dlopen``s) are not followed:
their dependencies are the host's business.

Not programs of the image, so not checked: ELF files under ``/usr/share`` (Debian
policy 9.1.1 / FHS: architecture-independent data; lintian's
``arch-dependent-file-in-usr-share``; Go's ``src/debug/elf/testdata`` lives there) and
ELF files built for another machine or operating system than the image's programs
(test data such as a FreeBSD i386 executable): no loader of this image could run them.
The image's machine is the one most of its programs are built for.

Paths are resolved inside the rootfs (an absolute symlink target is the image's, not
the host's), with a bound on link hops so a loop is a finding, not a hang.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kiln.assemble.elfread import ElfFacts, read_elf

_MAX_HOPS = 40
_MULTIARCH = {"EM_X86_64": "x86_64-linux-gnu", "EM_AARCH64": "aarch64-linux-gnu"}
_PROGRAM_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin")


@dataclass
class ClosureReport:
    """What the check found: programs and libraries checked, and every problem."""

    programs: int = 0
    libraries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No missing interpreter, library or symlink target."""
        return not self.problems


def resolve_in_root(root: Path, path: str) -> str | None:
    """``path`` (absolute, in the image) with every symlink followed inside ``root``;
    None when a component is missing or the links loop."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = posixpath.dirname(current) or "/"
            continue
        candidate = posixpath.join(current, part)
        host = root / candidate.lstrip("/")
        if host.is_symlink():
            hops += 1
            if hops > _MAX_HOPS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                current = "/"
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not os.path.lexists(host):
            return None
        current = candidate
    return current


def _read_elf(host: Path) -> ElfFacts | None:
    """``read_elf`` of the file at ``host`` (None: not ELF, not well-formed, unreadable)."""
    try:
        with host.open("rb") as stream:
            return read_elf(stream)
    except OSError:
        return None


def _configured_dirs(root: Path) -> list[str]:
    conf = root / "etc/ld.so.conf.d"
    found: list[str] = []
    if not conf.is_dir() or conf.is_symlink():
        return found
    for path in sorted(conf.glob("*.conf")):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            text = line.split("#", 1)[0].strip()
            if text.startswith("/"):
                found.append(text)
    return found


def _default_dirs(machine: str) -> list[str]:
    triplet = _MULTIARCH.get(machine)
    multiarch = [f"/lib/{triplet}", f"/usr/lib/{triplet}"] if triplet else []
    return [*multiarch, "/lib", "/usr/lib", "/lib64", "/usr/lib64"]


def _elf_files(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        for name in filenames:
            host = Path(dirpath) / name
            if host.is_symlink() or not host.is_file():
                continue
            yield "/" + str(host.relative_to(root)), host


def check_closure(root: Path) -> ClosureReport:
    """The ELF closure of the image unpacked at ``root`` (module doc).

    Each program's libraries are resolved breadth-first as the loader maps them: a
    ``DT_NEEDED`` whose soname an object loaded earlier already provides is satisfied
    by it (a plugin found through the program's RUNPATH serves its siblings too).
    """
    report = ClosureReport()
    configured = _configured_dirs(root)
    infos: dict[str, tuple[str | None, list[str], list[str], str] | None] = {}
    found_in: dict[tuple[tuple[str, ...], str], str | None] = {}
    problems: dict[str, None] = {}
    libraries: set[str] = set()

    def info(path: str) -> tuple[str | None, list[str], list[str], str] | None:
        if path not in infos:
            infos[path] = _read_elf(root / path.lstrip("/"))
        return infos[path]

    def search(dirs: tuple[str, ...], soname: str) -> str | None:
        key = (dirs, soname)
        if key not in found_in:
            found_in[key] = next(
                (
                    hit
                    for directory in dirs
                    if (hit := resolve_in_root(root, posixpath.join(directory, soname)))
                ),
                None,
            )
        return found_in[key]

    candidates = []
    for path, _host in _elf_files(root):
        if path.startswith("/usr/share/"):
            continue  # architecture-independent data by policy (module doc)
        parsed = info(path)
        if parsed is not None and parsed[0] is not None:
            candidates.append((path, parsed[0], parsed[3]))
    machines = Counter(machine for _, _, machine in candidates)
    image_machine = machines.most_common(1)[0][0] if machines else None
    programs = []
    for path, interpreter, machine in candidates:
        if machine != image_machine:
            continue  # another machine's or OS's executable: test data, not a program
        programs.append(path)
        if resolve_in_root(root, interpreter) is None:
            problems[f"{path}: ELF interpreter {interpreter} is missing"] = None
    report.programs = len(programs)
    for program in programs:
        loaded: dict[str, str] = {}
        queue = [program]
        mapped = {program}
        while queue:
            path = queue.pop(0)
            parsed = info(path)
            if parsed is None:
                continue
            _, needed, runpath, machine = parsed
            origin = posixpath.dirname(path)
            own = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath]
            dirs = tuple(d for d in own if d) + tuple(configured) + tuple(_default_dirs(machine))
            for soname in needed:
                if soname in loaded:
                    continue
                hit = search(dirs, soname)
                if hit is None:
                    problems[f"{path}: needs {soname}, in none of its library paths"] = None
                    continue
                loaded[soname] = hit
                if hit not in mapped:
                    mapped.add(hit)
                    queue.append(hit)
        libraries |= mapped - {program}
    report.libraries = len(libraries - set(programs))
    report.problems = list(problems)
    for directory in _PROGRAM_DIRS:
        host_dir = root / directory.lstrip("/")
        if host_dir.is_symlink() or not host_dir.is_dir():
            continue
        for entry in sorted(host_dir.iterdir()):
            if entry.is_symlink() and resolve_in_root(root, f"{directory}/{entry.name}") is None:
                report.problems.append(
                    f"{directory}/{entry.name}: dangling symlink to {os.readlink(entry)}"
                )
    return report
