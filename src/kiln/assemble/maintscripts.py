"""Replay the locked packages' maintainer scripts so a -dev image is configured Debian.

Runtime images never run a script (kiln's steps do the little they need). A -dev image
is a base for ``RUN apt-get install``, so it must be what Debian's own bootstrap makes:
alternatives registered (``awk``, ``which``, ``pager``), ``/etc/shells``, Debian's
system accounts and groups, debconf's database, every package "installed" in dpkg's
status. As mmdebstrap does, kiln lets dpkg do it (Debian Policy ch. 6, dpkg(1)):

1. the plan gets dpkg's database with every package ``install ok unpacked`` and the
   control members (scripts, triggers) in ``info/``;
2. the plan is written to a scratch root and, inside a sandbox as root (a private user
   namespace mapping 65536 ids, bubblewrap, no network; foreign architectures through
   qemu-user, see ``kiln.isolation.userns``), the packages are configured in Debian's
   order (``kiln.assemble.scriptorder``): stage by stage, the Essential set first, each
   package after what it (pre-)depends on, every ``preinst install`` of a stage and then
   ``dpkg --configure`` of that stage; ``dpkg --configure --pending`` runs what is left
   (triggers);
3. the root is read back into the plan: unchanged entries keep their package, what the
   scripts made is owned by ``kiln:maintscripts``; logs, lock files and ``*-old``
   backups (dates of this machine) are left out.

The result is reproducible: SOURCE_DATE_EPOCH is set for the scripts, Perl hashes are
unrandomised, every time stamp in a layer is the epoch, and nothing of the build
machine (host name, network) is visible.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kiln.assemble.fs import (
    MAINTSCRIPTS_OWNER,
    Entry,
    Plan,
    dir_entry,
    file_entry,
    sort_key,
    symlink_entry,
)
from kiln.assemble.harden import prune_docs
from kiln.assemble.model import AssemblyInput
from kiln.assemble.scriptorder import configure_stages
from kiln.assemble.steps import dpkg_database, path_exclude
from kiln.errors import EnvironmentProblem, PolicyError
from kiln.isolation.emulation import emulated
from kiln.isolation.userns import EXIT_NO_NAMESPACE

#: Owner of what the replayed scripts created or changed.
MAINTSCRIPTS = MAINTSCRIPTS_OWNER

#: Written by dpkg, apt and the scripts with this machine's clock, or only meaningful while
#: they run: not part of the image (mmdebstrap removes the same).
VOLATILE = frozenset(
    {
        "etc/.pwd.lock",
        "etc/group-",
        "etc/gshadow-",
        "etc/passwd-",
        "etc/shadow-",
        "etc/subgid-",
        "etc/subuid-",
        "var/cache/ldconfig/aux-cache",
        "var/lib/dpkg/lock",
        "var/lib/dpkg/lock-frontend",
        "var/lib/dpkg/triggers/Lock",
        "var/log/alternatives.log",
        "var/log/dpkg.log",
    }
)
_VOLATILE_SUFFIXES = ("-old",)
#: mount points of the sandbox: what the image ships there is kept as planned
_SANDBOX_MOUNTS = ("dev", "proc", "tmp")

#: The shell run inside the sandbox: ``$1`` is the architecture, the rest are steps in
#: order, ``preinst=PKG`` (run PKG's ``preinst install``) or ``configure=PKG,PKG...``
#: (``dpkg --configure`` those packages). The preinst runs as dpkg runs it: with the
#: package's name in the environment, which debconf's frontend also needs
#: (``DEBCONF_PACKAGE``: dpkg runs a new preinst from ``tmp.ci/``, where the frontend
#: reads the name from the control file) so the package owns its debconf questions.
CONFIGURE = r"""
set -e
arch="$1"; shift
export DPKG_ROOT= DPKG_ADMINDIR=/var/lib/dpkg DPKG_MAINTSCRIPT_ARCH="$arch"
for step in "$@"; do
    pkg="${step#*=}"
    case "$step" in
    preinst=*)
        script="/var/lib/dpkg/info/$pkg.preinst"
        [ -f "$script" ] || continue
        echo "kiln: > $pkg's preinst install"
        DPKG_MAINTSCRIPT_PACKAGE="${pkg%%:*}" DEBCONF_PACKAGE="${pkg%%:*}" \
            DPKG_MAINTSCRIPT_NAME=preinst "$script" install \
            || { rc=$?; echo "kiln: $pkg's preinst install exited $rc" >&2; exit "$rc"; }
        ;;
    configure=*)
        packages=$(IFS=,; echo $pkg)
        echo "kiln: > dpkg --configure $packages"
        dpkg --force-confold --configure $packages \
            || { rc=$?; echo "kiln: dpkg --configure $packages exited $rc" >&2; exit "$rc"; }
        ;;
    esac
done
echo "kiln: > dpkg --configure --pending"
dpkg --force-confold --configure --pending \
    || { rc=$?; echo "kiln: dpkg --configure --pending exited $rc" >&2; exit "$rc"; }
echo "kiln: > dpkg --audit"
dpkg --audit || { rc=$?; echo "kiln: dpkg --audit exited $rc" >&2; exit "$rc"; }
"""

#: whose ``preinst`` runs before all others: base-passwd's creates /etc/passwd and
#: /etc/group, which other scripts (and dpkg) look names up in
_FIRST = ("base-passwd", "base-files")


@dataclass(frozen=True)
class ScriptRun:
    exit_code: int
    output: str


class ScriptRunner(Protocol):
    """Runs the configure shell as root inside ``rootfs`` for ``arch``."""

    def run(self, rootfs: Path, *, arch: str, argv: tuple[str, ...], epoch: int) -> ScriptRun: ...


def has_scripts(inp: AssemblyInput) -> bool:
    """Whether a -dev image has anything to replay: a package with a maintainer script,
    and dpkg to run them. A -dev variant without dpkg (a debug shell on a runtime image,
    no package manager) is assembled like a runtime image: kiln's steps stand in."""
    scripts = {"preinst", "postinst"}
    return (
        inp.variant == "dev"
        and any(pkg.name == "dpkg" for pkg in inp.packages)
        and any(name in scripts for pkg in inp.packages for name, _ in pkg.control_files)
    )


def configure_steps(inp: AssemblyInput) -> tuple[str, ...]:
    """The steps of ``CONFIGURE``: base-passwd's and base-files' ``preinst`` first, then
    each stage of ``configure_stages``: its other ``preinst`` scripts, its configure."""
    first = [p.dpkg_name for f in _FIRST for p in inp.packages if p.name == f]
    steps = [f"preinst={name}" for name in first]
    for stage in configure_stages(inp.packages):
        steps.extend(f"preinst={name}" for name in stage if name not in first)
        steps.append("configure=" + ",".join(stage))
    return tuple(steps)


def unpacked(plan: Plan, inp: AssemblyInput) -> Plan:
    """The plan as dpkg leaves it after ``--unpack``: files in place, nothing configured.

    Files the image leaves out (path-exclude, documentation) go first, so scripts see
    what the image will hold (update-alternatives skips slave links to pruned man pages,
    as on Debian's slim images).
    """
    plan = path_exclude(plan, inp)
    plan, _, _ = prune_docs(plan, keep_man_dirs=True)
    return dpkg_database(plan, inp, status="install ok unpacked")


def configure_packages(plan: Plan, inp: AssemblyInput, runner: ScriptRunner) -> Plan:
    """Replay every package's maintainer scripts over ``plan`` (see the module docstring)."""
    plan = unpacked(plan, inp)
    with tempfile.TemporaryDirectory(prefix="kiln-configure-") as tmp:
        root = Path(tmp) / "root"
        written = materialise(plan, root, epoch=inp.source_date_epoch)
        result = runner.run(
            root,
            arch=inp.arch,
            argv=("/bin/sh", "-c", CONFIGURE, "sh", inp.arch, *configure_steps(inp)),
            epoch=inp.source_date_epoch,
        )
        if result.exit_code != 0:
            raise script_failure(inp, result)
        return read_back(plan, root, written)


#: how many of a failed script's last output lines the error carries
FAILURE_LINES = 15
#: how ``CONFIGURE`` announces each step
_STEP = "kiln: > "


def script_failure(inp: AssemblyInput, result: ScriptRun) -> PolicyError:
    """The error for a failed replay: the step that failed (``CONFIGURE``'s last line, or
    the script dpkg names) and the last lines that step printed, or that it printed
    nothing (mariadb-server's preinst sent its commands' output to /dev/null)."""
    lines = [line.rstrip() for line in result.output.splitlines() if line.strip()]
    step = f"maintainer scripts exited {result.exit_code}"
    if lines and lines[-1].startswith("kiln: ") and not lines[-1].startswith(_STEP):
        step = lines.pop().removeprefix("kiln: ")
    started = [i for i, line in enumerate(lines) if line.startswith(_STEP)]
    own = lines[started[-1] + 1 :] if started else lines
    for i, line in enumerate(own):
        if line.startswith("dpkg: error processing package"):  # and why, on the next line
            step = " ".join(part.strip() for part in own[i : i + 2]).removeprefix("dpkg: ")
            own = own[:i]
            break
    where = f"{inp.facts.name} ({inp.arch}): configuring the packages failed: {step}"
    if not own:
        return PolicyError(
            f"{where}, and printed nothing",
            hint="the script sent its commands' output elsewhere (>/dev/null): run it with "
            "sh -x in the image's root to see which command failed",
        )
    return PolicyError(
        f"{where}; its last line: {own[-1].strip()}",
        details=own[-FAILURE_LINES:],
        hint="a -dev image needs Debian's Essential set (base-passwd, base-files, "
        "dpkg, debconf, libc-bin, ...) for its packages' scripts to run",
    )


# ------------------------------------------------------------------------ scratch root


@dataclass(frozen=True)
class _Written:
    inode: int
    mtime_ns: int
    size: int


def materialise(plan: Plan, root: Path, *, epoch: int = 0) -> dict[str, _Written]:
    """Write ``plan`` under ``root`` with its modes and owners; what each file became on disk.

    Every time stamp is ``epoch`` (as dpkg leaves a .deb's members at their archive
    times), so what a script derives from a file's mtime (a .pyc's header, a cache) does
    not depend on when the build ran.
    """
    root.mkdir(mode=0o755)
    times = (epoch, epoch)
    written: dict[str, _Written] = {}
    dirs: list[Entry] = []
    for entry in plan.sorted():
        target = root / entry.path
        match entry.kind:
            case "dir":
                target.mkdir(mode=0o700)
                dirs.append(entry)
                continue
            case "symlink":
                os.symlink(entry.link_target or "", target)
                os.lchown(target, entry.uid, entry.gid)
                os.utime(target, times, follow_symlinks=False)
                continue
            case "hardlink":
                os.link(root / (entry.link_target or ""), target)
            case "file":
                target.write_bytes(entry.read())
                os.chown(target, entry.uid, entry.gid)
                os.chmod(target, entry.mode)
                os.utime(target, times)
        info = target.lstat()
        written[entry.path] = _Written(info.st_ino, info.st_mtime_ns, info.st_size)
    for entry in reversed(dirs):  # children first: a parent's times are set after
        os.chown(root / entry.path, entry.uid, entry.gid)
        os.chmod(root / entry.path, entry.mode)
        os.utime(root / entry.path, times)
    os.utime(root, times)
    return written


def _volatile(path: str) -> bool:
    return path in VOLATILE or path.endswith(_VOLATILE_SUFFIXES)


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = "" if rel == "." else rel + "/"
        if not base:
            dirnames[:] = [d for d in dirnames if d not in _SANDBOX_MOUNTS]
        for name in sorted([*dirnames, *filenames]):
            yield base + name, os.lstat(os.path.join(dirpath, name))


def read_back(plan: Plan, root: Path, written: dict[str, _Written]) -> Plan:
    """The plan of what ``root`` holds now, keeping each unchanged entry as it was."""
    entries: dict[str, Entry] = {}
    for path, info in _walk(root):
        if _volatile(path):
            continue
        old = plan.get(path)
        mode = stat.S_IMODE(info.st_mode)
        same_owner = old is not None and (old.uid, old.gid) == (info.st_uid, info.st_gid)
        if stat.S_ISDIR(info.st_mode):
            if old is not None and old.kind == "dir" and same_owner and old.mode == mode:
                entries[path] = old
            else:
                entries[path] = dir_entry(
                    path, mode=mode, uid=info.st_uid, gid=info.st_gid, package=MAINTSCRIPTS
                )
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(root / path)
            if old is not None and old.kind == "symlink" and old.link_target == target:
                entries[path] = old
            else:
                entries[path] = symlink_entry(path, target, package=MAINTSCRIPTS)
        elif stat.S_ISREG(info.st_mode):
            before = written.get(path)
            unchanged = (
                old is not None
                and before is not None
                and same_owner
                and old.mode == mode
                and before == _Written(info.st_ino, info.st_mtime_ns, info.st_size)
            )
            if unchanged and old is not None:
                entries[path] = old
            else:
                data = (root / path).read_bytes()
                entries[path] = file_entry(
                    path, data, mode=mode, uid=info.st_uid, gid=info.st_gid, package=MAINTSCRIPTS
                )
        else:
            raise PolicyError(
                f"a maintainer script left /{path}, which is not a file, directory or "
                "symlink; images carry no device nodes, fifos or sockets"
            )
    # what the sandbox mounted over is kept as planned
    for path, entry in plan.entries.items():
        if path.split("/", 1)[0] in _SANDBOX_MOUNTS:
            entries[path] = entry
    return Plan.of(entries[p] for p in sorted(entries, key=sort_key))


# ---------------------------------------------------------------------------- sandbox


class SandboxRunner:
    """The production runner: ``kiln.isolation.userns`` + bubblewrap, no network."""

    def __init__(self, *, timeout: float = 1800.0) -> None:
        self.timeout = timeout

    def command(self, rootfs: Path, *, arch: str, argv: tuple[str, ...], epoch: int) -> list[str]:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise EnvironmentProblem(
                "bubblewrap (bwrap) is not installed; -dev images configure their packages "
                "inside it",
                hint="apt-get install bubblewrap",
            )
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "DEBIAN_FRONTEND": "noninteractive",
            "DEBCONF_NONINTERACTIVE_SEEN": "true",
            "SOURCE_DATE_EPOCH": str(epoch),
            "PERL_HASH_SEED": "0",
            "PERL_PERTURB_KEYS": "0",
        }
        sandbox = [
            bwrap,
            "--bind", str(rootfs), "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",  # noqa: S108 (inside the sandbox)
            "--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
            "--hostname", "kiln",
            "--die-with-parent",
            "--clearenv",
            *(arg for key, value in sorted(env.items()) for arg in ("--setenv", key, value)),
            "--chdir", "/",
            "--",
            *argv,
        ]  # fmt: skip
        purpose = f"configuring the {arch} packages of a -dev image"
        return emulated(sandbox, arch, purpose=purpose, namespace=True)

    def run(self, rootfs: Path, *, arch: str, argv: tuple[str, ...], epoch: int) -> ScriptRun:
        command = self.command(rootfs, arch=arch, argv=argv, epoch=epoch)
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentProblem(
                f"configuring the {arch} packages took more than {self.timeout:.0f} s"
            ) from exc
        output = done.stdout.decode("utf-8", "replace")
        if done.returncode == EXIT_NO_NAMESPACE and "kiln-userns:" in output:
            raise EnvironmentProblem(
                "cannot make the sandbox that configures -dev images",
                details=[line for line in output.splitlines() if "kiln-userns:" in line],
                hint="kiln runs -dev images' maintainer scripts as root in a user namespace: "
                "build as root on Linux 6.7 or newer",
            )
        return ScriptRun(done.returncode, output)
