"""Merged /usr in every image (DEP 17): the links, and ELF interpreters that resolve."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assemble.helpers import make_input, member, pkg
from kiln.assemble import assemble
from kiln.assemble.fs import USRMERGE, Plan, dir_entry, file_entry, symlink_entry
from kiln.assemble.steps import elf_interpreter, merged_usr
from kiln.errors import PolicyError


def _host_program() -> bytes:
    """A dynamically linked program of the host (its PT_INTERP names the loader)."""
    path = shutil.which("true") or "/usr/bin/true"
    data = Path(path).read_bytes()
    if elf_interpreter(data) is None:
        pytest.skip(f"{path} is not a dynamically linked ELF program")
    return data


def test_every_image_gets_the_links_even_without_packages_shipping_them() -> None:
    plan = merged_usr(Plan.empty(), make_input(()))
    for alias in ("bin", "sbin", "lib", "lib64"):
        entry = plan.get(alias)
        assert entry is not None, alias
        assert entry.kind == "symlink"
        assert entry.link_target == f"usr/{alias}"
        assert entry.package == USRMERGE


def test_arm64_images_get_lib64_only_when_usr_lib64_exists() -> None:
    plain = merged_usr(Plan.empty(), make_input((), arch="arm64"))
    assert plain.get("lib64") is None
    with_dir = merged_usr(
        Plan.empty().with_entries(dir_entry("usr/lib64")), make_input((), arch="arm64")
    )
    assert with_dir.get("lib64") is not None


def test_the_static_image_shape_has_the_links() -> None:
    """A package set with no /bin or /lib members at all (the ``static`` image)."""
    inp = make_input((pkg("tzdata", member("./usr/share/zoneinfo/UTC", content=b"TZif")),))
    plan = assemble(inp).plan
    assert [plan.entries[a].link_target for a in ("bin", "sbin", "lib", "lib64")] == [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
    ]


def test_package_members_under_lib64_land_in_usr() -> None:
    loader = member("./lib64/ld-linux-x86-64.so.2", content=b"\x7fELF loader", mode=0o755)
    plan = assemble(make_input((pkg("libc6", loader),))).plan
    assert plan.get("usr/lib64/ld-linux-x86-64.so.2") is not None
    assert plan.resolve("lib64/ld-linux-x86-64.so.2") == "usr/lib64/ld-linux-x86-64.so.2"


def test_a_real_directory_in_place_of_a_link_fails_naming_its_owner() -> None:
    plan = Plan.empty().with_entries(dir_entry("lib", package="kiln"), file_entry("lib/x", b"x"))
    with pytest.raises(PolicyError, match=r"/lib is dir \(from kiln\), not a symlink to usr/lib"):
        merged_usr(plan, make_input(()))


def test_a_link_pointing_elsewhere_fails() -> None:
    plan = Plan.empty().with_entries(symlink_entry("bin", "/opt/bin", package="evil"))
    with pytest.raises(PolicyError, match=r"/bin is a symlink to '/opt/bin' \(from evil\)"):
        merged_usr(plan, make_input(()))


def test_a_program_whose_interpreter_is_missing_fails() -> None:
    program = _host_program()
    interp = elf_interpreter(program)
    plan = Plan.empty().with_entries(
        file_entry("usr/bin/true", program, mode=0o755, package="coreutils")
    )
    with pytest.raises(PolicyError, match="ELF interpreter is not in the image") as err:
        merged_usr(plan, make_input(()))
    assert err.value.details == [f"/usr/bin/true (coreutils) needs {interp}"]


def test_a_program_whose_interpreter_resolves_through_the_links_passes() -> None:
    program = _host_program()
    interp = (elf_interpreter(program) or "").lstrip("/")
    loader = "usr/" + interp if interp.split("/")[0] in ("lib", "lib64") else interp
    plan = Plan.empty().with_entries(
        file_entry("usr/bin/true", program, mode=0o755),
        file_entry(loader, b"\x7fELF loader", mode=0o755),
    )
    out = merged_usr(plan, make_input(()))
    assert out.resolve(interp) == loader


def test_elf_interpreter_of_non_elf_and_truncated_files_is_none() -> None:
    assert elf_interpreter(b"#!/bin/sh\n") is None
    assert elf_interpreter(b"\x7fELF\x02\x01") is None
