"""kiln.assemble.elfread on hostile bytes: truncated headers, program headers that point
past the end, unterminated strings, a DT_STRTAB outside every segment. Every one is
"not a well-formed ELF" (None), never an exception."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from kiln.assemble.elfread import read_elf

REAL = Path(os.path.realpath("/usr/bin/sort"))


def _ident64() -> bytes:
    return b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)


def _header64(*, phoff: int, phentsize: int, phnum: int) -> bytes:
    return _ident64() + struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, phoff, 0, 0, 64, phentsize, phnum, 64, 0, 0
    )


def _phdr64(p_type: int, offset: int, vaddr: int, filesz: int) -> bytes:
    return struct.pack("<IIQQQQQQ", p_type, 0, offset, vaddr, vaddr, filesz, filesz, 8)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x7fELF",  # the magic alone
        _ident64() + b"\x00" * 10,  # a truncated header
        _header64(phoff=64, phentsize=8, phnum=1) + b"\x00" * 8,  # entries too small
        _header64(phoff=10_000, phentsize=56, phnum=1),  # program headers past the end
        # PT_INTERP pointing past the end of the file
        _header64(phoff=64, phentsize=56, phnum=1) + _phdr64(3, 50_000, 0, 20),
        # PT_INTERP whose string never ends
        _header64(phoff=64, phentsize=56, phnum=1) + _phdr64(3, 120, 0, 20) + b"/lib" * 20,
        # DT_NEEDED with a DT_STRTAB that no PT_LOAD maps
        _header64(phoff=64, phentsize=56, phnum=1)
        + _phdr64(2, 120, 0, 48)
        + struct.pack("<qQqQqQ", 5, 0x9999_0000, 1, 1, 0, 0),
    ],
    ids=[
        "empty",
        "magic",
        "short-header",
        "small-phent",
        "phdrs-past-end",
        "interp-past-end",
        "unterminated-interp",
        "strtab-unmapped",
    ],
)
def test_hostile_bytes_are_not_an_elf_and_never_raise(data: bytes) -> None:
    assert read_elf(io.BytesIO(data)) is None


@pytest.mark.skipif(not REAL.is_file(), reason="needs coreutils' sort on this machine")
def test_a_real_program_and_its_interpreter_only_mode() -> None:
    data = REAL.read_bytes()
    facts = read_elf(io.BytesIO(data))
    assert facts is not None
    interpreter, needed, _, machine = facts
    assert interpreter is not None
    assert interpreter.startswith("/lib")
    assert "libc.so.6" in needed
    assert machine in ("EM_X86_64", "EM_AARCH64")
    assert read_elf(io.BytesIO(data), dynamic=False) == (interpreter, [], [], machine)
