"""Run one command inside an unpacked image rootfs with bubblewrap.

Every namespace is unshared (``--unshare-all``: no network unless asked, a private
loopback only), the rootfs is mounted read-only as ``/`` with fresh ``/proc``, ``/dev``
and a tmpfs ``/tmp``; the process runs as the image's uid/gid with exactly the image's
environment, in its working directory, and is killed with its whole session when the
timeout expires. See bwrap(1).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import EnvironmentProblem, InputError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTPUT_LIMIT = 4 << 20


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    exit_code: int  # -1 when the timeout killed it
    stdout: str
    stderr: str
    duration: float  # seconds
    timed_out: bool = False


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise EnvironmentProblem(
            "bubblewrap (bwrap) is not installed; kiln test runs images inside it",
            hint="apt-get install bubblewrap",
        )
    return path


def parse_user(user: str, rootfs: Path | None = None) -> tuple[int, int]:
    """``uid``, ``uid:gid``, ``name`` or ``name:group`` -> numeric ids (via the image's files)."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")

    def lookup(file: str, key: str, column: int) -> int:
        if key.isdigit():
            return int(key)
        if rootfs is not None:
            path = rootfs / "etc" / file
            if path.is_file() and not path.is_symlink():
                for line in path.read_text(errors="replace").splitlines():
                    fields = line.split(":")
                    if fields and fields[0] == key and len(fields) > column:
                        return int(fields[column])
        raise InputError(f"image user {user!r}: {key!r} is not in the image's /etc/{file}")

    uid = lookup("passwd", name, 2)
    if group:
        return uid, lookup("group", group, 2)
    if name.isdigit():
        return uid, uid
    return uid, lookup("passwd", name, 3)


def bwrap_argv(
    rootfs: Path,
    argv: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str = "/",
    network: bool = False,
    bwrap: str = "bwrap",
) -> list[str]:
    """The bubblewrap command line (pure, so it can be checked in tests)."""
    if not argv:
        raise InputError("nothing to run: the command is empty")
    cmd = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        str(rootfs),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
        "--uid",
        str(uid),
        "--gid",
        str(gid),
        "--clearenv",
    ]
    if network:
        cmd.append("--share-net")
    full_env = dict(env)
    full_env.setdefault("PATH", DEFAULT_PATH)
    for key, value in sorted(full_env.items()):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", workdir or "/", "--", *argv]
    return cmd


def _tail(data: bytes) -> str:
    return data[-_OUTPUT_LIMIT:].decode("utf-8", errors="replace")


def run_in_rootfs(
    rootfs: Path,
    argv: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str = "/",
    network: bool = False,
    timeout: float = 60.0,
) -> RunResult:
    """Run ``argv`` in the sandbox and capture exit code, stdout and stderr."""
    cmd = bwrap_argv(
        rootfs,
        argv,
        uid=uid,
        gid=gid,
        env=env,
        workdir=workdir,
        network=network,
        bwrap=find_bwrap(),
    )
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    duration = time.monotonic() - start
    setup_error = err.decode("utf-8", "replace").strip()
    if (
        not timed_out
        and proc.returncode != 0
        and setup_error.startswith("bwrap: ")
        and not setup_error.startswith("bwrap: execvp ")
    ):
        # bubblewrap itself failed (namespaces, mounts): no test ran, so this is not a result
        raise EnvironmentProblem(
            f"bubblewrap could not set up the sandbox for {rootfs}: {setup_error[:500]}",
            hint="kiln test needs unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, no seccomp filter blocking them)",
        )
    return RunResult(
        argv=tuple(argv),
        exit_code=-1 if timed_out else proc.returncode,
        stdout=_tail(out),
        stderr=_tail(err),
        duration=duration,
        timed_out=timed_out,
    )
