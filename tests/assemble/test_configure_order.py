"""-dev images configure their packages in Debian's order (kiln.assemble.scriptorder).

Debian Policy promises a ``preinst`` that its ``Pre-Depends`` are configured. kiln used
to run every ``preinst`` before any ``postinst``, and mariadb-debian12-dev failed: its
preinst sources debconf's confmodule and calls ``adduser --gecos``, which runs ``chfn``,
which fails while PAM's configuration (libpam-runtime's postinst) is not written yet;
the output went to /dev/null, so the build said only that the preinst exited 1.

The stage computation is checked on hand-made control stanzas. The real sandbox test
replays that class of failure with real dpkg, dash, perl and debconf (this machine's
Debian packages, copied file by file with their control fields) and two packages built
here: ``kiln-tool``, whose command works only once its postinst has written its
configuration, and ``kiln-server``, whose preinst loads debconf's confmodule (with a
``config`` script and templates) and runs ``kiln-tool`` silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from kiln.assemble.maintscripts import SandboxRunner, configure_packages, configure_steps
from kiln.assemble.model import DataMember, PackageInput
from kiln.assemble.plan import plan_from_packages
from kiln.assemble.scriptorder import configure_stages
from kiln.errors import PolicyError

from .helpers import MakeDeb, make_input, member, pkg


def names(stages: list[list[str]]) -> list[list[str]]:
    return [sorted(stage) for stage in stages]


# ------------------------------------------------------------------ the stages


def test_a_package_is_configured_after_what_it_pre_depends_and_depends_on() -> None:
    stages = configure_stages(
        (
            pkg("server", pre_depends="adduser (>= 3.40), debconf"),
            pkg("adduser", depends="passwd"),
            pkg("passwd", depends="libpam-runtime"),
            pkg("libpam-runtime"),
            pkg("debconf"),
        )
    )
    assert names(stages) == [["debconf", "libpam-runtime"], ["passwd"], ["adduser"], ["server"]]


def test_the_essential_set_and_what_it_needs_come_before_everything_else() -> None:
    stages = configure_stages(
        (
            pkg("leaf"),  # depends on nothing, but is not Essential
            pkg("dpkg", essential="yes", pre_depends="libzstd1"),
            pkg("libzstd1"),
            pkg("app", depends="leaf"),
        )
    )
    assert names(stages) == [["libzstd1"], ["dpkg"], ["leaf"], ["app"]]


def test_a_dependency_cycle_is_configured_in_one_stage() -> None:
    stages = configure_stages(
        (
            pkg("libc6", depends="libgcc-s1"),
            pkg("libgcc-s1", depends="libc6, gcc-base"),
            pkg("gcc-base"),
            pkg("app", depends="libc6"),
        )
    )
    assert names(stages) == [["gcc-base"], ["libc6", "libgcc-s1"], ["app"]]


def test_alternatives_and_virtual_packages_order_by_what_the_image_holds() -> None:
    stages = configure_stages(
        (
            pkg("app", depends="missing | mawk | gawk, debconf (>= 0.5) | debconf-2.0, not-here"),
            pkg("mawk", provides="awk"),
            pkg("gawk", depends="libmpfr6"),
            pkg("libmpfr6"),
            pkg("cdebconf", provides="debconf-2.0"),
            pkg("tool", depends="awk"),
        )
    )
    # dpkg may take any alternative the image holds: every one is configured first
    assert names(stages) == [["cdebconf", "libmpfr6", "mawk"], ["gawk", "tool"], ["app"]]


def test_multi_arch_same_packages_are_named_with_their_architecture() -> None:
    lib = PackageInput(
        name="libc6",
        version="2.36",
        architecture="amd64",
        control="Package: libc6\nVersion: 2.36\nArchitecture: amd64\nMulti-Arch: same\n",
        members=(),
        multi_arch="same",
    )
    inp = make_input((lib, pkg("base-passwd", depends="libc6")), variant="dev")
    assert names(configure_stages(inp.packages)) == [["libc6:amd64"], ["base-passwd"]]
    # base-passwd's preinst (passwd, group) still runs first; it is configured in its stage
    assert configure_steps(inp) == (
        "preinst=base-passwd",
        "preinst=libc6:amd64",
        "configure=libc6:amd64",
        "configure=base-passwd",
    )


# ----------------------------------------------------------- the real sandbox

#: this machine's packages that make a root dpkg and debconf run in
HOST_PACKAGES = (
    "libc6",
    "libc-bin",
    "libcrypt1",
    "libmd0",
    "libselinux1",
    "libpcre2-8-0",
    "libacl1",
    "libattr1",
    "libgmp10",
    "dash",
    "coreutils",
    "diffutils",
    "tar",
    "sed",
    "dpkg",
    "perl-base",
    "debconf",
)
_HOST_FIELDS = ("Package", "Version", "Architecture", "Multi-Arch", "Essential")
_LEFT_OUT = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/info/")


def _host_package(name: str) -> PackageInput | None:
    """``name`` as installed on this machine: its files and a few control fields (no
    relations, no scripts: only what the test's own packages run matters)."""
    query = subprocess.run(["dpkg-query", "-s", name], capture_output=True, text=True, check=False)
    if query.returncode != 0:
        return None
    stanza = Deb822(query.stdout)
    control = "".join(f"{f}: {stanza[f]}\n" for f in _HOST_FIELDS if f in stanza)
    control += (
        f"Maintainer: kiln tests <tests@example.invalid>\nDescription: this machine's {name}\n"
    )
    listing = subprocess.run(
        ["dpkg-query", "-L", name], capture_output=True, text=True, check=True
    ).stdout
    members = []
    for path in listing.splitlines():
        if path in ("", "/.") or path.startswith(_LEFT_OUT) or not os.path.lexists(path):
            continue
        rel = "." + path
        info = os.lstat(path)
        if os.path.islink(path):
            members.append(DataMember(rel, "symlink", 0o777, link_target=os.readlink(path)))
        elif os.path.isdir(path):
            members.append(DataMember(rel + "/", "dir", 0o755))
        elif os.path.isfile(path):
            data = Path(path).read_bytes()
            members.append(DataMember(rel, "file", info.st_mode & 0o7777, 0, 0, len(data), data))
    return PackageInput(
        name=name,
        version=str(stanza["Version"]),
        architecture=str(stanza["Architecture"]),
        control=control,
        members=tuple(members),
        multi_arch=str(stanza.get("Multi-Arch", "no")),
    )


@pytest.fixture(scope="module")
def host_packages() -> tuple[PackageInput, ...]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    if os.geteuid() != 0:
        pytest.skip("the sandbox maps 65536 ids: needs root")
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian machine")
    found = [_host_package(name) for name in HOST_PACKAGES]
    if any(p is None for p in found):
        pytest.skip("this machine lacks one of " + ", ".join(HOST_PACKAGES))
    accounts = pkg(
        "kiln-accounts",
        member("./etc/passwd", content=b"root:x:0:0:root:/root:/bin/sh\n"),
        member("./etc/group", content=b"root:x:0:\n"),
    )
    return (*(p for p in found if p is not None), accounts)


TOOL = b"""#!/bin/sh
# like chfn without PAM's common-* files: works once the package is configured
[ -f /etc/kiln-tool.conf ] || { echo "kiln-tool: not configured" >&2; exit 1; }
echo done >> /var/lib/kiln-tool.log
"""
TOOL_POSTINST = b"""#!/bin/sh
set -e
echo configured > /etc/kiln-tool.conf
"""
SERVER_TEMPLATES = b"""Template: kiln-server/warning
Type: note
Description: a note the config script asks
 Shown only by an interactive frontend.
"""
SERVER_CONFIG = b"""#!/bin/sh
set -e
. /usr/share/debconf/confmodule
db_input high kiln-server/warning || true
db_go || true
"""
SERVER_PREINST = b"""#!/bin/sh
set -e
. /usr/share/debconf/confmodule
# as mariadb-server's preinst runs adduser: the output goes nowhere
kiln-tool >/dev/null 2>&1
db_stop
"""


def _server_packages(make_deb: MakeDeb) -> tuple[PackageInput, PackageInput]:
    tool = make_deb(
        "kiln-tool",
        {"usr/sbin/kiln-tool": (TOOL, 0o755), "DEBIAN/postinst": (TOOL_POSTINST, 0o755)},
    )
    server = make_deb(
        "kiln-server",
        {
            "usr/share/kiln-server/README": b"server\n",
            "DEBIAN/preinst": (SERVER_PREINST, 0o755),
            "DEBIAN/config": (SERVER_CONFIG, 0o755),
            "DEBIAN/templates": SERVER_TEMPLATES,
        },
        fields={"Pre-Depends": "kiln-tool, debconf"},
    )
    return tool, server


def _configure(packages: tuple[PackageInput, ...]) -> tuple[dict[str, bytes | None], str]:
    """What the scripts left: debconf's questions, kiln-tool's log, dpkg's status."""
    inp = make_input(packages, variant="dev")
    plan = configure_packages(plan_from_packages(packages, arch="amd64"), inp, SandboxRunner())
    files = {p: plan.read(p) for p in ("var/cache/debconf/config.dat", "var/lib/kiln-tool.log")}
    return files, (plan.read("var/lib/dpkg/status") or b"").decode()


def test_a_preinst_finds_what_it_pre_depends_on_configured(
    host_packages: tuple[PackageInput, ...], make_deb: MakeDeb
) -> None:
    files, status = _configure((*host_packages, *_server_packages(make_deb)))
    assert files["var/lib/kiln-tool.log"] == b"done\n"  # the preinst's kiln-tool ran
    for name in ("kiln-tool", "kiln-server"):
        assert f"Package: {name}\nStatus: install ok installed\n" in status
    # debconf knows the package the preinst belongs to, as under dpkg: it owns its questions
    config = (files["var/cache/debconf/config.dat"] or b"").decode().split("\n\n")
    question = next(Deb822(q) for q in config if q.startswith("Name: kiln-server/warning\n"))
    assert question["Owners"] == "kiln-server"


def test_a_silent_failing_script_is_named_and_said_to_have_printed_nothing(
    host_packages: tuple[PackageInput, ...], make_deb: MakeDeb
) -> None:
    silent = make_deb(
        "kiln-silent",
        {"DEBIAN/preinst": (b"#!/bin/sh\nset -e\nfalse >/dev/null 2>&1\n", 0o755)},
    )
    with pytest.raises(PolicyError) as caught:
        _configure((*host_packages, silent))
    assert str(caught.value) == (
        "tiny (amd64): configuring the packages failed: "
        "kiln-silent's preinst install exited 1, and printed nothing"
    )
    assert caught.value.hint is not None
    assert "sh -x" in caught.value.hint


def test_a_failing_script_is_named_with_its_last_lines(
    host_packages: tuple[PackageInput, ...], make_deb: MakeDeb
) -> None:
    script = b"#!/bin/sh\necho starting\necho 'kiln-loud: cannot reach the moon' >&2\nexit 7\n"
    loud = make_deb("kiln-loud", {"DEBIAN/postinst": (script, 0o755)})
    with pytest.raises(PolicyError) as caught:
        _configure((*host_packages, loud))
    assert str(caught.value) == (
        "tiny (amd64): configuring the packages failed: error processing package kiln-loud "
        "(--configure): installed kiln-loud package post-installation script subprocess "
        "returned error exit status 7; its last line: kiln-loud: cannot reach the moon"
    )
    assert caught.value.details[-2:] == ["starting", "kiln-loud: cannot reach the moon"]
