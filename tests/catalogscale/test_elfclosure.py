"""ELF closure on a rootfs made of this machine's real Debian binaries (amd64 or arm64):
complete, it passes; a missing library, interpreter or symlink target is named."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kiln.sandbox.elfclosure import check_closure, resolve_in_root


def _copy(root: Path, path: str) -> None:
    real = os.path.realpath(path)
    dest = root / real.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(real, dest)


def _libraries(program: str) -> list[str]:
    """What the real loader maps for ``program`` (ldd), to build a complete rootfs."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1:
            found.append(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            found.append(parts[0])  # the interpreter
    return [p for p in found if p.startswith("/")]


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A merged-/usr rootfs with /usr/bin/sort and every library it loads."""
    root = tmp_path / "root"
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        (root / "usr" / target.split("/")[1]).mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(target)
    _copy(root, "/usr/bin/sort")
    for library in _libraries("/usr/bin/sort"):
        _copy(root, library)
        # keep the path the program asks for (ld-linux-x86-64.so.2 in /lib64) as a link
        asked = root / library.lstrip("/")
        if not asked.exists():
            asked.parent.mkdir(parents=True, exist_ok=True)
            asked.symlink_to(os.path.realpath(library))
    return root


def test_complete_rootfs_passes(rootfs: Path) -> None:
    report = check_closure(rootfs)
    assert report.ok, report.problems
    assert report.programs >= 1
    assert report.libraries >= 1


def test_missing_library_is_named(rootfs: Path) -> None:
    libc = next(p for p in rootfs.rglob("libc.so.6") if not p.is_symlink())
    libc.unlink()
    report = check_closure(rootfs)
    assert not report.ok
    assert any("/usr/bin/sort: needs libc.so.6" in p for p in report.problems), report.problems


def test_missing_interpreter_is_named(rootfs: Path) -> None:
    for loader in [*rootfs.rglob("ld-linux*")]:
        if loader.is_file() and not loader.is_symlink():
            loader.unlink()
    report = check_closure(rootfs)
    assert any("ELF interpreter" in p and "missing" in p for p in report.problems)


def test_dangling_program_symlink_is_named(rootfs: Path) -> None:
    (rootfs / "usr/bin/gone").symlink_to("/usr/bin/not-there")
    (rootfs / "usr/bin/loop").symlink_to("loop")
    report = check_closure(rootfs)
    assert "/usr/bin/gone: dangling symlink to /usr/bin/not-there" in report.problems
    assert any(p.startswith("/usr/bin/loop: dangling symlink") for p in report.problems)


def test_absolute_links_resolve_inside_the_root_not_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/escape").symlink_to("/etc/hostname")  # exists on the host, not in the image
    (root / "etc/up").symlink_to("../../../../etc/hostname")
    assert resolve_in_root(root, "/etc/escape") is None
    assert resolve_in_root(root, "/etc/up") is None


def test_garbage_elf_is_not_a_crash(rootfs: Path) -> None:
    (rootfs / "usr/bin/broken").write_bytes(b"\x7fELF" + os.urandom(200))
    assert check_closure(rootfs).ok


def _with_interpreter(binary: bytes, interpreter: bytes) -> bytes:
    """``binary`` with its PT_INTERP string overwritten by ``interpreter`` (same length)."""
    at = binary.index(b"/lib64/ld-linux-x86-64.so.2\0")
    return binary[:at] + interpreter.ljust(28, b"\0")[:28] + binary[at + 28 :]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="patches an x86-64 interpreter")
def test_data_and_other_systems_executables_are_not_programs_of_the_image(rootfs: Path) -> None:
    """Go ships ELF test files in /usr/share/go-*/src/debug/elf/testdata: a FreeBSD
    executable (interpreter /libexec/ld-elf.so.1) and objects with a garbage interpreter.
    They are data, not programs of the image; the same bytes in /usr/bin are a finding."""
    real = Path(os.path.realpath("/usr/bin/sort")).read_bytes()
    broken = _with_interpreter(real, b"/libexec/ld-elf.so.1")
    freebsd = bytearray(broken)
    freebsd[7] = 9  # EI_OSABI: ELFOSABI_FREEBSD
    data = rootfs / "usr/share/go-1.24/src/debug/elf/testdata"
    data.mkdir(parents=True)
    (data / "linux-exec").write_bytes(broken)
    (rootfs / "usr/lib/freebsd-exec").write_bytes(bytes(freebsd))
    report = check_closure(rootfs)
    assert report.ok, report.problems

    (rootfs / "usr/bin/broken").write_bytes(broken)
    report = check_closure(rootfs)
    assert report.problems == ["/usr/bin/broken: ELF interpreter /libexec/ld-elf.so.1 is missing"]


def _pyelftools(host: Path) -> tuple[str | None, list[str], list[str], str] | None:
    """The same facts through pyelftools' full parse (the reference the fast reader
    replaced)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.segments import InterpSegment

    try:
        with host.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                return None
            stream.seek(0)
            elf = ELFFile(stream)
            interp = next(
                (s.get_interp_name() for s in elf.iter_segments() if isinstance(s, InterpSegment)),
                None,
            )
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        kind = tag.entry.d_tag
                        if kind == "DT_NEEDED":
                            needed.append(str(tag.needed))  # type: ignore[attr-defined]
                        elif kind == "DT_RPATH":
                            rpath += str(tag.rpath).split(":")  # type: ignore[attr-defined]
                        elif kind == "DT_RUNPATH":
                            runpath += str(tag.runpath).split(":")  # type: ignore[attr-defined]
            return interp, needed, runpath or rpath, str(elf["e_machine"])
    except (ELFError, OSError, ValueError):
        return None


def test_the_fast_reader_agrees_with_pyelftools_on_this_machines_binaries() -> None:
    from kiln.sandbox.elfclosure import _read_elf

    hosts = [
        p
        for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu")
        if Path(d).is_dir()
        for p in sorted(Path(d).iterdir())
        if p.is_file() and not p.is_symlink()
    ]
    compared = 0
    for host in hosts[::7]:  # a spread of programs and libraries, quick
        expected = _pyelftools(host)
        if expected is None:
            continue
        assert _read_elf(host) == expected, host
        compared += 1
    assert compared >= 50
