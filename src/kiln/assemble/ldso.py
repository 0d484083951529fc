"""``/etc/ld.so.cache``, written when a program needs library paths beyond the defaults.

Debian's loader searches the multiarch directories (``/usr/lib/<triplet>``, via merged
/usr also ``/lib/<triplet>``) and ``/usr/lib`` without a cache, so most images need
none, and ldconfig (a maintainer-script job) never runs. When a package adds another
directory through ``/etc/ld.so.conf.d/*.conf`` with shared objects in it, the loader
would not see them: then kiln writes the cache ldconfig would, for every directory the
configuration names (ld.so(8), ldconfig(8)).

The format is glibc's "new" cache (glibc-ld.so.cache1.1, the only one ldconfig writes
since glibc 2.32; elf/cache.c, sysdeps/generic/dl-cache.h): a 48-byte header, 24-byte
entries (flags, soname offset, path offset, osversion, hwcap) sorted the way the
loader's binary search expects (descending by ``_dl_cache_libcmp``), then the strings,
offsets counted from the start of the file. It is checked against the host's
``ldconfig -p -C`` and the real loader in tests.
"""

from __future__ import annotations

import functools
import io
import posixpath
import struct

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from kiln.assemble.fs import Plan, file_entry, normalise_path
from kiln.assemble.model import AssemblyInput
from kiln.errors import InputError

CACHE_PATH = "etc/ld.so.cache"
_MAGIC = b"glibc-ld.so.cache1.1"
_HEADER = struct.Struct("<20sIIB3sI12s")  # magic+version, nlibs, strings, flags, pad, ext, unused
_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
_ENDIAN_LITTLE = 2  # cache_file_new_flags_endian_little
_FLAG_ELF_LIBC6 = 0x0003
#: the loader's _DL_CACHE_DEFAULT_ID per architecture (sysdeps/*/dl-cache.h)
ARCH_FLAGS = {"amd64": _FLAG_ELF_LIBC6 | 0x0300, "arm64": _FLAG_ELF_LIBC6 | 0x0A00}
_MACHINES = {"amd64": "EM_X86_64", "arm64": "EM_AARCH64"}

TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def default_dirs(arch: str) -> frozenset[str]:
    triplet = TRIPLETS.get(arch, f"{arch}-linux-gnu")
    return frozenset({f"usr/lib/{triplet}", "usr/lib", "usr/lib64"})


def _conf_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    for entry in sorted(plan.children("etc/ld.so.conf.d"), key=lambda e: e.path):
        if not entry.path.endswith(".conf"):
            continue
        data = plan.read(entry.path) or b""
        lines.extend(data.decode("utf-8", "replace").splitlines())
    return lines


def uncached_library_dirs(plan: Plan, arch: str) -> tuple[str, ...]:
    """Directories from ld.so.conf.d holding shared objects the loader will not search.

    Empty once the image has an ``/etc/ld.so.cache`` (``ld_so_cache`` writes one).
    """
    if plan.resolve(CACHE_PATH) is not None:
        return ()
    defaults = default_dirs(arch)
    found = []
    for raw in _conf_lines(plan):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("include") or not line.startswith("/"):
            continue
        try:
            directory = normalise_path(line, where="ld.so.conf.d")
        except InputError:
            continue
        real = plan.resolve(directory)
        if real is None or real in defaults:
            continue
        has_libs = any(
            ".so" in posixpath.basename(e.path) and e.kind != "dir" for e in plan.children(real)
        )
        if has_libs and "/" + real not in found:
            found.append("/" + real)
    return tuple(found)


def libcmp(a: str, b: str) -> int:
    """glibc's ``_dl_cache_libcmp``: digit runs compare as numbers (libfoo.so.10 > .so.9)."""
    i = j = 0
    while i < len(a):
        if a[i].isdigit():
            if j >= len(b) or not b[j].isdigit():
                return 1
            i2, j2 = i, j
            while i2 < len(a) and a[i2].isdigit():
                i2 += 1
            while j2 < len(b) and b[j2].isdigit():
                j2 += 1
            if int(a[i:i2]) != int(b[j:j2]):
                return int(a[i:i2]) - int(b[j:j2])
            i, j = i2, j2
        elif j < len(b) and b[j].isdigit():
            return -1
        elif j >= len(b) or a[i] != b[j]:
            return ord(a[i]) - (ord(b[j]) if j < len(b) else 0)
        else:
            i += 1
            j += 1
    return 0 if j >= len(b) else -ord(b[j])


def _soname(data: bytes, arch: str) -> str | None:
    """DT_SONAME of a shared object built for ``arch``; None for anything else."""
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.header["e_type"] != "ET_DYN" or elf.header["e_machine"] != _MACHINES.get(arch):
            return None
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags("DT_SONAME"):
                    return str(tag.soname)  # type: ignore[attr-defined]  # set per tag kind
    except (ELFError, ValueError, struct.error, KeyError):
        return None
    return None


def _configured_dirs(plan: Plan) -> list[str]:
    """Directories named by /etc/ld.so.conf.d/*.conf, resolved in the image, in order."""
    found: list[str] = []
    for raw in _conf_lines(plan):
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("/"):
            continue  # "include" lines: ld.so.conf.d is read whole already
        try:
            real = plan.resolve(normalise_path(line, where="ld.so.conf.d"))
        except InputError:
            continue
        if real and plan.entries[real].kind == "dir" and real not in found:
            found.append(real)
    return found


def cache_entries(plan: Plan, arch: str) -> list[tuple[str, str]]:
    """(soname, path) of the shared objects ldconfig would list, in the loader's order."""
    if arch not in ARCH_FLAGS:
        return []
    dirs = _configured_dirs(plan)
    dirs += [
        d for d in ("usr/lib", f"usr/lib/{TRIPLETS[arch]}") if d not in dirs and d in plan.entries
    ]
    seen: dict[str, str] = {}
    for directory in dirs:
        for entry in sorted(plan.children(directory), key=lambda e: e.path):
            name = posixpath.basename(entry.path)
            if not name.startswith("lib") or ".so" not in name or entry.kind == "dir":
                continue
            data = plan.read(entry.path)
            soname = _soname(data, arch) if data else None
            if soname is None or plan.resolve(f"{directory}/{soname}") is None:
                continue
            seen.setdefault(soname, f"/{directory}/{soname}")  # the first directory wins

    def descending(x: tuple[str, str], y: tuple[str, str]) -> int:
        return libcmp(y[0], x[0])

    return sorted(seen.items(), key=functools.cmp_to_key(descending))


def render_cache(entries: list[tuple[str, str]], arch: str) -> bytes:
    """The bytes of an ld.so.cache listing ``entries`` (already in the loader's order)."""
    strings = bytearray()
    offsets: dict[str, int] = {}
    start = _HEADER.size + _ENTRY.size * len(entries)

    def offset(text: str) -> int:
        if text not in offsets:
            offsets[text] = start + len(strings)
            strings.extend(text.encode() + b"\0")
        return offsets[text]

    body = b"".join(
        _ENTRY.pack(ARCH_FLAGS[arch], offset(soname), offset(path), 0, 0)
        for soname, path in entries
    )
    header = _HEADER.pack(
        _MAGIC, len(entries), len(strings), _ENDIAN_LITTLE, bytes(3), 0, bytes(12)
    )
    return header + body + bytes(strings)


def ld_so_cache(plan: Plan, inp: AssemblyInput) -> Plan:
    """Write /etc/ld.so.cache when ld.so.conf.d names directories beyond the defaults."""
    if not uncached_library_dirs(plan, inp.arch) or inp.arch not in ARCH_FLAGS:
        return plan
    data = render_cache(cache_entries(plan, inp.arch), inp.arch)
    return plan.with_entries(file_entry(CACHE_PATH, data))
