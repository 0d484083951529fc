"""Library alternatives in runtime images: the links update-alternatives would make for a
shared library (libblas.so.3: R's libR.so needs it), read from the real postinst text of
Debian's packages, never run."""

from __future__ import annotations

import dataclasses

from assemble.helpers import make_input, member, pkg
from kiln.assemble.fs import Plan, file_entry, symlink_entry
from kiln.assemble.model import AssemblyInput, PackageInput
from kiln.assemble.steps import library_alternatives

TRIPLET = "usr/lib/x86_64-linux-gnu"
# libblas3 3.11.0-2 (trixie), its postinst verbatim
LIBBLAS3_POSTINST = b"""#!/bin/sh

set -e

update-alternatives --install /usr/lib/x86_64-linux-gnu/libblas.so.3 \\
                    libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 10



exit 0
"""
# an optimised BLAS registering the same name with a higher priority (openblas' shape)
OPENBLAS_POSTINST = b"""#!/bin/sh
set -e
update-alternatives --install /usr/lib/x86_64-linux-gnu/libblas.so.3 libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 100
"""  # noqa: E501  # a postinst line, verbatim
MAWK_POSTINST = b"""#!/bin/sh
set -e
update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\
  --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz
"""
COMPUTED_POSTINST = b"""#!/bin/sh
set -e
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
update-alternatives --install /usr/lib/$triplet/libfoo.so.1 libfoo.so.1 /usr/lib/$triplet/foo/libfoo.so.1 10
"""  # noqa: E501  # a postinst line, verbatim


def _with_postinst(package: PackageInput, script: bytes) -> PackageInput:
    return dataclasses.replace(package, control_files=(("postinst", script),))


def _blas() -> PackageInput:
    return _with_postinst(
        pkg("libblas3", member(f"{TRIPLET}/blas/libblas.so.3", content=b"\x7fELF")),
        LIBBLAS3_POSTINST,
    )


def test_a_library_alternative_gets_debians_two_links() -> None:
    inp = make_input((_blas(),))
    done = library_alternatives(_planned(inp), inp)
    link = done.get(f"{TRIPLET}/libblas.so.3")
    assert link is not None
    assert link.link_target == "/etc/alternatives/libblas.so.3-x86_64-linux-gnu"
    hop = done.get("etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    assert hop is not None
    assert hop.link_target == f"/{TRIPLET}/blas/libblas.so.3"
    assert done.resolve(f"{TRIPLET}/libblas.so.3") == f"{TRIPLET}/blas/libblas.so.3"


def _planned(inp: AssemblyInput) -> Plan:
    """The packages' files as a plan (what the steps before this one leave)."""
    entries = [
        file_entry(m.path, m.content if isinstance(m.content, bytes) else b"", package=package.name)
        for package in inp.packages
        for m in package.members
    ]
    return Plan.empty().with_entries(*entries)


def test_the_highest_priority_installed_candidate_wins() -> None:
    openblas = _with_postinst(
        pkg(
            "libopenblas0-pthread",
            member(f"{TRIPLET}/openblas-pthread/libblas.so.3", content=b"\x7fELF"),
        ),
        OPENBLAS_POSTINST,
    )
    inp = make_input((_blas(), openblas))
    done = library_alternatives(_planned(inp), inp)
    hop = done.get("etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    assert hop is not None
    assert hop.link_target == f"/{TRIPLET}/openblas-pthread/libblas.so.3"


def test_programs_computed_commands_dev_images_and_existing_links_are_left_alone() -> None:
    mawk = _with_postinst(pkg("mawk", member("usr/bin/mawk", content=b"x")), MAWK_POSTINST)
    computed = _with_postinst(
        pkg("libfoo1", member(f"{TRIPLET}/foo/libfoo.so.1", content=b"x")), COMPUTED_POSTINST
    )
    inp = make_input((mawk, computed))
    plan = _planned(inp)
    assert library_alternatives(plan, inp) is plan  # awk is a program's; $triplet unknown
    dev = make_input((_blas(),), variant="dev")
    assert library_alternatives(_planned(dev), dev).get(f"{TRIPLET}/libblas.so.3") is None
    inp = make_input((_blas(),))
    mine = _planned(inp).with_entries(symlink_entry(f"{TRIPLET}/libblas.so.3", "blas/libblas.so.3"))
    kept = library_alternatives(mine, inp).get(f"{TRIPLET}/libblas.so.3")
    assert kept is not None
    assert kept.link_target == "blas/libblas.so.3"


def test_each_install_command_is_its_own_alternative() -> None:
    """An optimised BLAS registers libblas.so.3 and liblapack.so.3 in one postinst, each
    its own master: liblapack.so.3 goes to it, not to the lower-priority liblapack3."""
    both = b"""#!/bin/sh
set -e
update-alternatives --install /usr/lib/x86_64-linux-gnu/libblas.so.3 libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 100
update-alternatives --install /usr/lib/x86_64-linux-gnu/liblapack.so.3 liblapack.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3 100
"""  # noqa: E501  # postinst lines, verbatim
    lapack = b"""#!/bin/sh
set -e
update-alternatives --install /usr/lib/x86_64-linux-gnu/liblapack.so.3 liblapack.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/lapack/liblapack.so.3 10
"""  # noqa: E501  # a postinst line, verbatim
    openblas = _with_postinst(
        pkg(
            "libopenblas0-pthread",
            member(f"{TRIPLET}/openblas-pthread/libblas.so.3", content=b"\x7fELF"),
            member(f"{TRIPLET}/openblas-pthread/liblapack.so.3", content=b"\x7fELF"),
        ),
        both,
    )
    reference = _with_postinst(
        pkg("liblapack3", member(f"{TRIPLET}/lapack/liblapack.so.3", content=b"\x7fELF")), lapack
    )
    inp = make_input((reference, openblas))
    done = library_alternatives(_planned(inp), inp)
    for name in ("libblas.so.3", "liblapack.so.3"):
        assert done.resolve(f"{TRIPLET}/{name}") == f"{TRIPLET}/openblas-pthread/{name}"


def test_a_postinst_that_does_not_parse_makes_no_link() -> None:
    """Unbalanced quotes (shlex cannot read the line) or a master path with '..': the
    command is skipped, nothing is invented, the step does not fail."""
    hostile = _with_postinst(
        pkg("libblas3", member(f"{TRIPLET}/blas/libblas.so.3", content=b"\x7fELF")),
        b"update-alternatives --install '/usr/lib/libblas.so.3 libblas /x 10\n"
        b"update-alternatives --install /usr/lib/../../etc/libblas.so.3 libblas "
        b"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3 10\n",
    )
    inp = make_input((hostile,))
    plan = _planned(inp)
    assert library_alternatives(plan, inp) is plan
