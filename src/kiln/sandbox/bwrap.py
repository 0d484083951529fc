"""Run one command inside an unpacked image rootfs with bubblewrap.

Every namespace is unshared (``--unshare-all``: no network unless asked, a private
loopback only), the rootfs is mounted read-only as ``/`` with fresh ``/proc``, ``/dev``
and a tmpfs ``/tmp``; the process runs as the image's uid/gid with exactly the image's
environment, in its working directory, and is killed with its whole session when the
timeout expires. See bwrap(1).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import EnvironmentProblem, InputError
from kiln.isolation.emulation import emulated
from kiln.sandbox.probe import EXIT_NO_SERVICE

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
    probe_exit: int | None = None  # service tests: the probe's exit (kiln.sandbox.probe)
    probe_output: str = ""  # service tests: what the service answered, or why it did not


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
    info_fd: int | None = None,
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
        # as a container runtime does: the host's resolver over the image's (empty)
        # /etc/resolv.conf, so a networked test can resolve the archive's host name
        image_conf = rootfs / "etc/resolv.conf"
        if (
            os.path.isfile("/etc/resolv.conf")
            and image_conf.is_file()
            and not image_conf.is_symlink()
        ):
            cmd += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    if info_fd is not None:  # bubblewrap writes the sandbox's pid there (a service test)
        cmd += ["--info-fd", str(info_fd)]
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
    arch: str | None = None,
) -> RunResult:
    """Run ``argv`` in the sandbox and capture exit code, stdout and stderr.

    ``arch`` names the rootfs's architecture when it may not be this machine's: its
    programs then run through qemu-user (``kiln.isolation.emulation``).
    """
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
    if arch is not None:
        cmd = emulated(cmd, arch, purpose=f"running {argv[0]} in the {arch} image {rootfs}")
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


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> bool:
    """Terminate a sandbox (bwrap's --die-with-parent takes its processes along)."""
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return True


def _probe(
    service: subprocess.Popen[bytes], argv: list[str], timeout: float
) -> tuple[int | None, str, bool]:
    """Run the probe; give up early when the service exits. (exit, output, timed out)."""
    with tempfile.TemporaryFile() as output:
        probe = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        limit = time.monotonic() + timeout
        while probe.poll() is None:
            if service.poll() is not None:  # it will never answer now
                try:
                    probe.wait(timeout=0.5)  # unless it already did
                except subprocess.TimeoutExpired:
                    probe.kill()
                    probe.wait()
                    output.seek(0)
                    return EXIT_NO_SERVICE, output.read().decode("utf-8", "replace"), False
                break
            if time.monotonic() > limit:
                probe.kill()
                probe.wait()
                return None, "", True
            time.sleep(0.05)
        output.seek(0)
        return probe.returncode, output.read().decode("utf-8", "replace"), False


def probe_argv(pid: int, port: int, expect: str, send: str, deadline: float) -> list[str]:
    """The probe client entered into sandbox ``pid``'s user and network namespaces."""
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        raise EnvironmentProblem(
            "nsenter is not installed; kiln test uses it to probe services in the sandbox",
            hint="apt-get install util-linux",
        )
    return [
        nsenter,
        f"--target={pid}",
        "--user",
        "--net",
        "--preserve-credentials",
        "--",
        sys.executable,
        "-c",
        "import sys; from kiln.sandbox.probe import main; sys.exit(main(sys.argv[1:]))",
        str(port),
        expect,
        send,
        repr(deadline),
    ]


def run_service_in_rootfs(
    rootfs: Path,
    argv: Sequence[str],
    *,
    port: int,
    expect: str,
    send: str = "",
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str = "/",
    network: bool = False,
    timeout: float = 60.0,
    arch: str | None = None,
) -> RunResult:
    """Start ``argv`` as a service in the sandbox, probe it on its loopback, stop it.

    The sandbox has its own network namespace (unless ``network``), so the service's
    port cannot clash with the host's. The probe (``kiln.sandbox.probe``) runs inside
    that namespace via nsenter, retrying until the service listens; ``timeout`` bounds
    the whole test. The service's output goes to files, so a chatty one never blocks.
    ``arch``: as for ``run_in_rootfs`` (the probe runs natively, in the sandbox's
    network namespace).
    """
    read_end, write_end = os.pipe()
    cmd = bwrap_argv(
        rootfs,
        argv,
        uid=uid,
        gid=gid,
        env=env,
        workdir=workdir,
        network=network,
        bwrap=find_bwrap(),
        info_fd=write_end,
    )
    if arch is not None:
        cmd = emulated(cmd, arch, purpose=f"running {argv[0]} in the {arch} image {rootfs}")
    start = time.monotonic()
    deadline = time.time() + timeout
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as info_file:
            info = info_file.read()  # bubblewrap closes it once the sandbox is set up
        probe_exit: int | None = None
        probe_output = ""
        timed_out = False
        try:
            pid = int(json.loads(info)["child-pid"]) if info else None
        except (ValueError, KeyError, TypeError) as exc:
            _stop(proc)
            raise EnvironmentProblem(f"bubblewrap wrote unreadable --info-fd data: {exc}") from exc
        if pid is not None:
            probe_exit, probe_output, timed_out = _probe(
                proc, probe_argv(pid, port, expect, send, deadline), timeout + 5
            )
        stopped = _stop(proc)
        duration = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    setup_error = stderr.decode("utf-8", "replace").strip()
    if pid is None and not setup_error.startswith("bwrap: execvp "):
        # bubblewrap wrote no sandbox pid: it failed before the service could start
        raise EnvironmentProblem(
            f"bubblewrap could not set up the sandbox for {rootfs}: {setup_error[:500]}",
            hint="kiln test needs unprivileged user namespaces",
        )
    return RunResult(
        argv=tuple(argv),
        exit_code=-1 if stopped else (proc.returncode if proc.returncode is not None else -1),
        stdout=_tail(stdout),
        stderr=_tail(stderr),
        duration=duration,
        timed_out=timed_out,
        probe_exit=probe_exit,
        probe_output=probe_output[-_OUTPUT_LIMIT:],
    )
