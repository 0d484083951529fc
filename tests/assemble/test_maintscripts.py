"""-dev images replay their packages' maintainer scripts (kiln.assemble.maintscripts).

Offline: a fake runner stands in for dpkg to check what the scripts see (dpkg's database
with every package unpacked, the scripts in info/) and how their work is read back; a
static program standing in for /bin/sh checks the real sandbox (root over 65536 ids, no
network, a fixed host name). The catalog's real -dev images are checked in
tests/catalog/test_dev_debian.py.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest

from kiln.assemble import assemble
from kiln.assemble.maintscripts import (
    MAINTSCRIPTS,
    SandboxRunner,
    ScriptRun,
    configure_packages,
    has_scripts,
)
from kiln.assemble.model import DataMember, Group, PackageInput, PathSpec, User
from kiln.assemble.plan import plan_from_packages
from kiln.errors import EnvironmentProblem, InputError, PolicyError

from .helpers import compile_static, make_input, member, pkg

PASSWD_MASTER = b"root:x:0:0:root:/root:/bin/bash\nstaff:x:50:50::/:/usr/sbin/nologin\n"
GROUP_MASTER = b"root:x:0:\nstaff:x:50:\n"


def scripted(
    name: str, *members: DataMember, scripts: dict[str, bytes] | None = None
) -> PackageInput:
    base = pkg(name, *members)
    files = tuple(sorted((scripts or {"postinst": b"#!/bin/sh\nexit 0\n"}).items()))
    return PackageInput(
        name=base.name,
        version=base.version,
        architecture=base.architecture,
        control=base.control,
        members=base.members,
        control_files=files,
    )


class FakeDpkg:
    """Does to the root what base-passwd's preinst and mawk's postinst would."""

    def __init__(self) -> None:
        self.seen_status = ""
        self.seen_mtimes: set[int] = set()
        self.seen_scripts: list[str] = []
        self.argv: tuple[str, ...] = ()

    def run(self, rootfs: Path, *, arch: str, argv: tuple[str, ...], epoch: int) -> ScriptRun:
        assert arch == "amd64"
        assert epoch == 1_700_000_000
        self.argv = argv
        self.seen_status = (rootfs / "var/lib/dpkg/status").read_text()
        self.seen_scripts = sorted(p.name for p in (rootfs / "var/lib/dpkg/info").iterdir())
        self.seen_mtimes = {
            int(p.lstat().st_mtime) for p in (rootfs / "usr/bin/mawk", rootfs / "usr", rootfs)
        }
        (rootfs / "etc/alternatives").mkdir(parents=True)
        os.symlink("/usr/bin/mawk", rootfs / "etc/alternatives/awk")
        os.symlink("/etc/alternatives/awk", rootfs / "usr/bin/awk")
        (rootfs / "etc/passwd").write_bytes(PASSWD_MASTER)
        (rootfs / "etc/group").write_bytes(GROUP_MASTER)
        (rootfs / "var/log").mkdir(parents=True)
        (rootfs / "var/log/dpkg.log").write_text("2026-12-07 05:00:00 configure mawk\n")
        (rootfs / "usr/share/mawk/gone").unlink()
        status = self.seen_status.replace("install ok unpacked", "install ok installed")
        (rootfs / "var/lib/dpkg/status").write_text(status)
        (rootfs / "var/lib/dpkg/status-old").write_text(self.seen_status)
        return ScriptRun(0, "Setting up mawk ...\n")


def dpkg_package() -> PackageInput:
    """dpkg itself: what runs the scripts (a -dev variant without it replays nothing)."""
    return pkg("dpkg", member("./usr/bin/dpkg", content=b"\x7fELF dpkg", mode=0o755))


def mawk() -> PackageInput:
    return scripted(
        "mawk",
        member("./usr/bin/mawk", content=b"\x7fELF mawk", mode=0o755),
        member("./usr/share/mawk/gone", content=b"x"),
        member("./usr/share/man/man1/mawk.1.gz", content=b"man"),
        scripts={"postinst": b"#!/bin/sh\nupdate-alternatives --install ...\n"},
    )


def test_only_dev_images_with_scripts_and_dpkg_replay_them() -> None:
    plain = pkg("plain", member("./usr/bin/x", content=b"x"))
    dpkg = pkg("dpkg", member("./usr/bin/dpkg", content=b"\x7fELF dpkg", mode=0o755))
    assert has_scripts(make_input((mawk(), dpkg), variant="dev"))
    assert not has_scripts(make_input((mawk(), dpkg), variant="runtime"))
    assert not has_scripts(make_input((plain, dpkg), variant="dev"))
    # a debug -dev variant without dpkg (recipes/images/jq.yaml): nothing to run them with
    assert not has_scripts(make_input((mawk(),), variant="dev"))


def test_scripts_see_every_package_unpacked_with_its_scripts() -> None:
    fake = FakeDpkg()
    inp = make_input((mawk(), dpkg_package()), variant="dev")
    assemble(inp, runner=fake)
    assert "Package: mawk\nStatus: install ok unpacked\n" in fake.seen_status
    assert "mawk.postinst" in fake.seen_scripts
    assert "mawk.list" in fake.seen_scripts
    assert fake.argv[:2] == ("/bin/sh", "-c")
    # the steps: each preinst, then dpkg --configure of the stage (kiln.assemble.scriptorder)
    assert fake.argv[4:] == ("amd64", "preinst=dpkg", "preinst=mawk", "configure=dpkg,mawk")
    # every time stamp is the epoch, not the build's (a .pyc or cache made from an mtime)
    assert fake.seen_mtimes == {1_700_000_000}


def test_what_the_scripts_did_is_read_back() -> None:
    plan = assemble(make_input((mawk(), dpkg_package()), variant="dev"), runner=FakeDpkg()).plan
    awk = plan.get("usr/bin/awk")
    assert awk is not None
    assert (awk.link_target, awk.package) == ("/etc/alternatives/awk", MAINTSCRIPTS)
    assert plan.resolve("usr/bin/awk") == "usr/bin/mawk"
    assert plan.entries["usr/bin/mawk"].package == "mawk"
    assert "usr/share/mawk/gone" not in plan  # removed by a script
    # dpkg's own status is kept, not rewritten by kiln
    assert b"Status: install ok installed" in (plan.read("var/lib/dpkg/status") or b"")
    # logs and backups carry this machine's clock: left out
    assert "var/log/dpkg.log" not in plan
    assert "var/lib/dpkg/status-old" not in plan
    # documentation went before the scripts ran (no slave links to pruned man pages)
    assert "usr/share/man/man1/mawk.1.gz" not in plan
    # ... but its directory stays: update-alternatives fails making a slave link to a man
    # page kept elsewhere (openjdk's) in a missing directory
    man1 = plan.get("usr/share/man/man1")
    assert man1 is not None
    assert man1.kind == "dir"
    # the scripts are kept for later upgrades and removals, executable
    postinst = plan.get("var/lib/dpkg/info/mawk.postinst")
    assert postinst is not None
    assert postinst.mode == 0o755


def test_kiln_accounts_are_added_to_debians() -> None:
    inp = make_input(
        (mawk(), dpkg_package()),
        variant="dev",
        users=(User("node", 1000, 1000, "/home/node", "/bin/bash"),),
        groups=(Group("node", 1000),),
    )
    plan = assemble(inp, runner=FakeDpkg()).plan
    passwd = (plan.read("etc/passwd") or b"").decode()
    group = (plan.read("etc/group") or b"").decode()
    assert passwd.startswith(PASSWD_MASTER.decode())  # Debian's, in Debian's order
    assert "\nnonroot:x:65532:65532:" in passwd
    assert "\nnode:x:1000:1000:" in passwd
    assert group.startswith(GROUP_MASTER.decode())
    assert "\nnode:x:1000:" in group
    assert plan.get("home/node") is not None


def test_an_account_that_clashes_with_debians_is_refused() -> None:
    inp = make_input((mawk(), dpkg_package()), variant="dev", users=(User("staff", 1000, 0),))
    with pytest.raises(InputError, match="'staff' \\(1000\\) clashes with Debian's user 'staff'"):
        assemble(inp, runner=FakeDpkg())


class Failing:
    def run(self, rootfs: Path, *, arch: str, argv: tuple[str, ...], epoch: int) -> ScriptRun:
        del rootfs, arch, argv, epoch
        return ScriptRun(1, "Setting up base-files ...\nchown: invalid group: 'root:utmp'\n")


def test_a_failing_script_fails_the_build_with_its_output() -> None:
    with pytest.raises(PolicyError) as caught:
        assemble(make_input((mawk(), dpkg_package()), variant="dev"), runner=Failing())
    assert "configuring the packages failed" in str(caught.value)
    assert "chown: invalid group: 'root:utmp'" in "\n".join(caught.value.details)


def test_the_sandbox_maps_ids_and_emulates_foreign_architectures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    runner = SandboxRunner()
    native = runner.command(tmp_path, arch="amd64", argv=("/bin/true",), epoch=1)
    assert native[1:4] == ["-m", "kiln.isolation.userns", "--"]  # the 65536-id namespace
    assert "--unshare-net" in native
    assert native[-1] == "/bin/true"
    arm = runner.command(tmp_path, arch="arm64", argv=("/bin/true",), epoch=1)
    assert arm[3] == "--binfmt"
    assert arm[4].endswith(":/usr/bin/qemu-aarch64-static:F")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/bwrap" if name == "bwrap" else None)
    with pytest.raises(EnvironmentProblem, match="qemu-aarch64-static"):
        runner.command(tmp_path, arch="arm64", argv=("/bin/true",), epoch=1)


# ----------------------------------------------------------------- the real sandbox

FAKE_SH_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char host[64] = "";
    gethostname(host, sizeof host);
    FILE *f = fopen("/etc/made-by-script", "w");
    if (!f) return 10;
    fprintf(f, "arch=%s host=%s uid=%d epoch=%s\n", argv[4], host, (int)getuid(),
            getenv("SOURCE_DATE_EPOCH"));
    fclose(f);
    if (chown("/etc/made-by-script", 0, 50) != 0) return 11;  /* staff: needs the id map */
    if (symlink("/usr/bin/mawk", "/etc/alternatives-awk") != 0) return 12;
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="maps 65536 ids: needs root")
def test_the_sandbox_runs_as_root_over_debians_ids(tmp_path: Path) -> None:
    sh = compile_static(tmp_path, FAKE_SH_C)
    image = scripted(
        "fake-sh",
        member("./usr/bin/sh", content=sh, mode=0o755),
        member("./etc/", kind="dir"),
    )
    inp = make_input((image,), variant="dev")
    plan = configure_packages(plan_from_packages((image,), arch="amd64"), inp, SandboxRunner())
    made = plan.get("etc/made-by-script")
    assert made is not None
    assert (made.uid, made.gid, made.package) == (0, 50, MAINTSCRIPTS)
    assert plan.read("etc/made-by-script") == b"arch=amd64 host=kiln uid=0 epoch=1700000000\n"
    assert plan.entries["etc/alternatives-awk"].link_target == "/usr/bin/mawk"
    assert plan.entries["usr/bin/sh"].package == "fake-sh"
    assert plan.entries["etc"].package == "fake-sh"


def test_a_spec_link_to_where_an_alternative_leads_keeps_the_alternative() -> None:
    same = PathSpec("/usr/bin/awk", "symlink", target="mawk")
    plan = assemble(
        make_input((mawk(), dpkg_package()), variant="dev", paths=(same,)), runner=FakeDpkg()
    ).plan
    awk = plan.get("usr/bin/awk")
    assert awk is not None
    assert awk.link_target == "/etc/alternatives/awk"  # update-alternatives --config works
    elsewhere = PathSpec("/usr/bin/awk", "symlink", target="/usr/bin/gawk")
    with pytest.raises(InputError, match="/usr/bin/awk"):
        assemble(
            make_input((mawk(), dpkg_package()), variant="dev", paths=(elsewhere,)),
            runner=FakeDpkg(),
        )
