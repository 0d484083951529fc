"""The hardening pass over a finished plan, and the report it leaves behind.

* setuid/setgid bits are stripped (and listed);
* nothing is world-writable except ``/tmp`` (1777);
* ``/usr/share/{doc,man,info,locale,lintian,bug}`` are pruned, keeping every
  ``copyright`` file (licence compliance);
* runtime variants lose static libraries (``*.a``) and headers (``/usr/include``), and
  the build fails if one still holds a shell or a package manager;
* an ELF audit (pyelftools) records per binary: PIE, RELRO, BIND_NOW, stack protector,
  FORTIFY and NX stack, the checks of checksec/lintian's hardening-check.

ELF references: System V ABI + GNU extensions (PT_GNU_RELRO, PT_GNU_STACK, DF_1_PIE).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from kiln.assemble.fs import Entry, Plan
from kiln.assemble.ldso import uncached_library_dirs
from kiln.assemble.model import AssemblyInput
from kiln.errors import PolicyError

PRUNED_DIRS = tuple(f"usr/share/{d}" for d in ("doc", "man", "info", "locale", "lintian", "bug"))
MAN_DIR = "usr/share/man"
WORLD_WRITABLE_ALLOWED = frozenset({"tmp"})
BIN_DIRS = ("usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "bin", "sbin")
SHELLS = frozenset(
    {"sh", "bash", "rbash", "dash", "ash", "busybox", "zsh", "ksh", "mksh", "csh", "tcsh", "fish"}
)
PACKAGE_MANAGERS = frozenset({"apt", "aptitude", "dpkg"})

_DF_BIND_NOW = 0x8
_DF_1_NOW = 0x1
_DF_1_PIE = 0x08000000


@dataclass(frozen=True)
class ElfAudit:
    """The hardening properties of one ELF file."""

    path: str
    package: str
    kind: Literal["executable", "shared-object", "static-executable", "other"]
    pie: bool | None  # None for shared objects (not applicable)
    relro: Literal["full", "partial", "none"]
    bind_now: bool
    stack_protector: bool
    fortify: bool
    nx_stack: bool


@dataclass(frozen=True)
class HardeningReport:
    arch: str
    variant: str
    setid_stripped: tuple[str, ...] = ()
    world_writable_fixed: tuple[str, ...] = ()
    pruned_files: int = 0
    pruned_bytes: int = 0
    dev_files_removed: int = 0
    #: ld.so.conf.d directories with libraries the loader will not search (no ld.so.cache)
    library_dirs_without_cache: tuple[str, ...] = ()
    elf: tuple[ElfAudit, ...] = field(default=())

    def summary(self) -> dict[str, int]:
        binaries = [e for e in self.elf if e.kind != "shared-object"]
        return {
            "elf_files": len(self.elf),
            "executables": len(binaries),
            "pie": sum(1 for e in binaries if e.pie),
            "relro_full": sum(1 for e in self.elf if e.relro == "full"),
            "relro_partial": sum(1 for e in self.elf if e.relro == "partial"),
            "bind_now": sum(1 for e in self.elf if e.bind_now),
            "stack_protector": sum(1 for e in self.elf if e.stack_protector),
            "fortify": sum(1 for e in self.elf if e.fortify),
            "nx_stack": sum(1 for e in self.elf if e.nx_stack),
            "setid_stripped": len(self.setid_stripped),
            "world_writable_fixed": len(self.world_writable_fixed),
            "pruned_files": self.pruned_files,
            "pruned_bytes": self.pruned_bytes,
            "dev_files_removed": self.dev_files_removed,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "variant": self.variant,
            "summary": self.summary(),
            "setid_stripped": list(self.setid_stripped),
            "library_dirs_without_cache": list(self.library_dirs_without_cache),
            "world_writable_fixed": list(self.world_writable_fixed),
            "elf": [asdict(e) for e in self.elf],
        }


# ------------------------------------------------------------------------------ passes


def strip_setid(plan: Plan) -> tuple[Plan, list[str]]:
    changed = [
        replace(e, mode=e.mode & ~(stat.S_ISUID | stat.S_ISGID))
        for e in plan.entries.values()
        if e.kind in ("file", "hardlink") and e.mode & (stat.S_ISUID | stat.S_ISGID)
    ]
    return plan.replacing(changed), sorted("/" + e.path for e in changed)


def fix_world_writable(plan: Plan) -> tuple[Plan, list[str]]:
    changed = [
        replace(e, mode=e.mode & ~stat.S_IWOTH)
        for e in plan.entries.values()
        if e.kind != "symlink" and e.mode & stat.S_IWOTH and e.path not in WORLD_WRITABLE_ALLOWED
    ]
    return plan.replacing(changed), sorted("/" + e.path for e in changed)


def _pruned(path: str, plan: Plan, *, keep_man_dirs: bool) -> bool:
    if not any(path == d or path.startswith(d + "/") for d in PRUNED_DIRS):
        return False
    if posixpath.basename(path) == "copyright":
        return False
    entry = plan.entries[path]
    if entry.kind == "dir" and keep_man_dirs and (path + "/").startswith(MAN_DIR + "/"):
        return False
    if entry.kind == "dir":
        # keep directories that (transitively) hold a kept copyright file
        return not any(posixpath.basename(e.path) == "copyright" for e in plan.under(path))
    # /usr/share/doc/<pkg> -> <other pkg> says where that package's copyright lives
    return not (
        path.startswith("usr/share/doc/") and path.count("/") == 3 and entry.kind == "symlink"
    )


def prune_docs(plan: Plan, *, keep_man_dirs: bool = False) -> tuple[Plan, int, int]:
    """Drop documentation (keeping copyright files).

    ``keep_man_dirs`` keeps the (empty) /usr/share/man directories: -dev images need
    them, since update-alternatives fails to make a slave link to a man page that lives
    elsewhere (openjdk's) when its directory is missing, as on Debian's slim images.
    """
    dropped = [e for p, e in plan.entries.items() if _pruned(p, plan, keep_man_dirs=keep_man_dirs)]
    files = [e for e in dropped if e.kind != "dir"]
    return plan.without(e.path for e in dropped), len(files), sum(e.size for e in files)


def prune_dev_files(plan: Plan) -> tuple[Plan, int]:
    """Static libraries and headers: build inputs, never needed at run time."""
    dropped = [
        p
        for p, e in plan.entries.items()
        if p == "usr/include"
        or p.startswith("usr/include/")
        or (e.kind != "dir" and p.startswith("usr/lib") and p.endswith(".a"))
    ]
    return plan.without(dropped), sum(1 for p in dropped if plan.entries[p].kind != "dir")


def _forbidden_name(name: str) -> bool:
    return name in SHELLS or name in PACKAGE_MANAGERS or name.startswith(("apt-", "dpkg-"))


def forbidden_programs(plan: Plan, allow: Iterable[str] = ()) -> list[Entry]:
    """Shells and package managers in the usual program directories."""
    allowed = {a.lstrip("/") for a in allow}
    found = []
    for entry in plan.entries.values():
        directory, name = posixpath.split(entry.path)
        if (
            directory in BIN_DIRS
            and entry.kind != "dir"
            and _forbidden_name(name)
            and entry.path not in allowed
        ):
            found.append(entry)
    return sorted(found, key=lambda e: e.path)


# ----------------------------------------------------------------------------- ELF audit


def _may_be_elf(entry: Entry) -> bool:
    if entry.kind != "file" or entry.size < 64:
        return False
    name = posixpath.basename(entry.path)
    return bool(entry.mode & 0o111) or ".so" in name


def audit_elf(path: str, package: str, data: bytes) -> ElfAudit | None:
    """Hardening properties of an ELF image, or None if ``data`` is not ELF."""
    if not data.startswith(b"\x7fELF"):
        return None
    try:
        elf = ELFFile(io.BytesIO(data))
        segments = list(elf.iter_segments())
        interp = any(s["p_type"] == "PT_INTERP" for s in segments)
        relro_seg = any(s["p_type"] == "PT_GNU_RELRO" for s in segments)
        stack = [s for s in segments if s["p_type"] == "PT_GNU_STACK"]
        nx = bool(stack) and not stack[0]["p_flags"] & P_FLAGS.PF_X
        flags = flags_1 = 0
        bind_now = False
        dynamic = False
        for segment in segments:
            if isinstance(segment, DynamicSegment):
                dynamic = True
                for tag in segment.iter_tags():
                    match tag.entry.d_tag:
                        case "DT_BIND_NOW":
                            bind_now = True
                        case "DT_FLAGS":
                            flags = tag.entry.d_val
                        case "DT_FLAGS_1":
                            flags_1 = tag.entry.d_val
        bind_now = bind_now or bool(flags & _DF_BIND_NOW) or bool(flags_1 & _DF_1_NOW)
        # Symbol names live in the string tables: scanning those is ~100x faster than
        # decoding every symbol entry, and sees the same names.
        names: set[bytes] = set()
        for table in (".dynstr", ".strtab"):
            section = elf.get_section_by_name(table)
            if section is not None:
                names.update(section.data().split(b"\0"))
        e_type = elf.header["e_type"]
    except (ELFError, ValueError, KeyError, AssertionError) as exc:
        del exc  # not a well-formed ELF (e.g. a test fixture): not audited
        return None
    kind: Literal["executable", "shared-object", "static-executable", "other"]
    pie: bool | None
    if e_type == "ET_EXEC":
        kind = "executable" if interp or dynamic else "static-executable"
        pie = False
    elif e_type == "ET_DYN":
        # libc.so.6 and ld.so carry an interpreter too, yet they are libraries
        library = re.search(r"\.so(\.[0-9.]+)?$", path) is not None
        is_pie = not library and (interp or bool(flags_1 & _DF_1_PIE))
        kind = "shared-object"
        if is_pie:
            kind = "executable" if interp else "static-executable"
        pie = True if is_pie else None
    else:
        kind, pie = "other", None
    return ElfAudit(
        path="/" + path,
        package=package,
        kind=kind,
        pie=pie,
        relro="full" if relro_seg and bind_now else "partial" if relro_seg else "none",
        bind_now=bind_now,
        stack_protector=bool({b"__stack_chk_fail", b"__stack_chk_guard"} & names),
        fortify=any(_is_fortified(n) for n in names),
        nx_stack=nx,
    )


def _is_fortified(symbol: bytes) -> bool:
    """glibc's FORTIFY_SOURCE wrappers: ``__memcpy_chk``, ``__printf_chk``, ..."""
    return symbol.startswith(b"__") and symbol.endswith(b"_chk") and b"stack_chk" not in symbol


#: audits by (path, package, blake2b of the bytes); cleared when it reaches _AUDITS_MAX
_AUDITS: dict[tuple[str, str, bytes], ElfAudit | None] = {}
_AUDITS_MAX = 100_000


def audit_plan(plan: Plan) -> list[ElfAudit]:
    """Audit every ELF file of ``plan``. Results are remembered per (path, package,
    content digest): every image of a catalog carries libc6's libraries, and a worker
    audited them once per image before (a full pyelftools parse, about a tenth of a
    catalog image's time)."""
    out = []
    for entry in plan.sorted():
        if not _may_be_elf(entry):
            continue
        data = entry.read()
        if not data.startswith(b"\x7fELF"):
            continue
        key = (entry.path, entry.package, hashlib.blake2b(data, digest_size=32).digest())
        if key in _AUDITS:
            found = _AUDITS[key]
        else:
            if len(_AUDITS) >= _AUDITS_MAX:
                _AUDITS.clear()
            found = _AUDITS[key] = audit_elf(entry.path, entry.package, data)
        if found is not None:
            out.append(found)
    return out


# --------------------------------------------------------------------------------- pass


def harden(plan: Plan, inp: AssemblyInput) -> tuple[Plan, HardeningReport]:
    """Apply every hardening rule; raise ``PolicyError`` for a runtime shell/package manager."""
    plan, setid = strip_setid(plan)
    plan, writable = fix_world_writable(plan)
    plan, pruned_files, pruned_bytes = prune_docs(plan, keep_man_dirs=inp.variant == "dev")
    dev_removed = 0
    if inp.variant == "runtime":
        plan, dev_removed = prune_dev_files(plan)
        forbidden = forbidden_programs(plan, inp.allow_paths)
        if forbidden:
            raise PolicyError(
                f"the runtime variant of {inp.facts.name} ({inp.arch}) contains a shell or "
                "package manager",
                details=[f"/{e.path} (from {e.package})" for e in forbidden],
                hint="exclude the package, move it to the dev variant, or list the path in "
                "allow_paths if it is truly needed",
            )
    report = HardeningReport(
        arch=inp.arch,
        variant=inp.variant,
        setid_stripped=tuple(setid),
        world_writable_fixed=tuple(writable),
        pruned_files=pruned_files,
        pruned_bytes=pruned_bytes,
        dev_files_removed=dev_removed,
        library_dirs_without_cache=uncached_library_dirs(plan, inp.arch),
        elf=tuple(audit_plan(plan)),
    )
    return plan, report
