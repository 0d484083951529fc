"""Run a command as root in a private user namespace that maps 65536 ids, with emulation.

``python -m kiln.isolation.userns [--binfmt NAME:MAGIC:MASK:INTERPRETER] -- ARGV...``

Maintainer scripts chown files to Debian's system groups (staff, utmp, shadow), so the
namespace maps ids 0-65535 one to one (a bubblewrap ``--unshare-user`` maps only one).
A foreign architecture's programs run through qemu-user registered in a binfmt_misc
instance private to this user namespace (Linux >= 6.7), with the ``F`` flag so the
interpreter is opened now and works inside the image's root: the machine's own
binfmt_misc is never touched. The command is usually ``bwrap``, which builds the rest
of the sandbox. See user_namespaces(7), binfmt_misc (Documentation/admin-guide).

A separate process on purpose: it forks, and its caller may be running threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
ID_MAP = "0 0 65536\n"
#: Exit status when the namespace cannot be made (the caller turns it into a clear error).
EXIT_NO_NAMESPACE = 125


def _fail(message: str) -> int:
    sys.stderr.write(f"kiln-userns: {message}\n")
    return EXIT_NO_NAMESPACE


def _child(argv: list[str], binfmt: str | None, ready: int, go: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        return _fail(f"unshare(user): {os.strerror(ctypes.get_errno())}")
    os.write(ready, b"u")
    os.close(ready)
    if os.read(go, 1) != b"g":
        return _fail("the id maps could not be written (kiln must run as root for this)")
    os.setgid(0)
    os.setuid(0)
    if libc.unshare(CLONE_NEWNS) != 0:
        return _fail(f"unshare(mount): {os.strerror(ctypes.get_errno())}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return _fail(f"making / private: {os.strerror(ctypes.get_errno())}")
    if binfmt is not None:
        where = tempfile.mkdtemp(prefix="kiln-binfmt-")
        if libc.mount(b"binfmt_misc", where.encode(), b"binfmt_misc", 0, None) != 0:
            return _fail(
                f"mounting a private binfmt_misc: {os.strerror(ctypes.get_errno())} "
                "(needs Linux 6.7 or newer)"
            )
        try:
            with open(os.path.join(where, "register"), "w", encoding="ascii") as register:
                register.write(binfmt)
        except OSError as exc:
            return _fail(f"registering the emulator: {exc}")
    os.execvp(argv[0], argv)  # noqa: S606 (argv is kiln's own bwrap command)
    return EXIT_NO_NAMESPACE  # pragma: no cover - execvp does not return


def _close_inherited(keep: set[int]) -> None:
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:  # stdin, stdout and stderr stay
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed since
                os.close(fd)


def main(args: list[str]) -> int:
    binfmt = None
    if args[:1] == ["--binfmt"]:
        binfmt, args = args[1], args[2:]
    if args[:1] != ["--"] or len(args) < 2:
        return _fail("usage: [--binfmt RULE] -- ARGV...")
    argv = args[1:]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(ready_r)
        os.close(go_w)
        os._exit(_child(argv, binfmt, ready_w, go_r))
    os.close(ready_w)
    os.close(go_r)
    # Hold no descriptor the command was given (e.g. bubblewrap's --info-fd): its
    # reader waits for every write end to close, which must not wait for this process.
    _close_inherited(keep={ready_r, go_w})
    if os.read(ready_r, 1) == b"u":
        try:
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as out:
                    out.write(ID_MAP)
            os.write(go_w, b"g")
        except OSError as exc:
            sys.stderr.write(f"kiln-userns: writing the id maps: {exc}\n")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":  # pragma: no cover - the entry point of the helper process
    sys.exit(main(sys.argv[1:]))
