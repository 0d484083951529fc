"""Running another architecture's programs here: qemu-user in a private binfmt_misc.

An arm64 image's tests (and an arm64 ``-dev`` image's maintainer scripts) run on an
amd64 machine through qemu-user. Nothing is registered on the machine itself: kiln's
user-namespace helper (``python -m kiln.isolation.userns``) mounts a binfmt_misc
instance private to its namespace (Linux >= 6.7) and registers the emulator there with
the ``F`` flag (opened at registration, so it works inside the image's root), then
runs the sandbox. Every program the emulated one starts is emulated too, as under a
registered binfmt. The rules are qemu's own (``qemu-binfmt-conf.sh``).
"""

from __future__ import annotations

import platform
import shutil
import sys
from collections.abc import Sequence

from kiln.errors import EnvironmentProblem

#: Debian architecture -> (qemu's name, ELF magic, mask), as qemu-binfmt-conf.sh has them
_QEMU = {
    "arm64": (
        "aarch64",
        r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    "armhf": (
        "arm",
        r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    "amd64": (
        "x86_64",
        r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
}
#: what each machine runs without emulation
_NATIVE = {"x86_64": {"amd64", "i386"}, "aarch64": {"arm64"}, "arm64": {"arm64"}}
#: how much longer a program takes under qemu-user than natively, at most (interpreters
#: such as node and python starting up: 5 to 10 times here); a test's timeout is
#: stretched by it under emulation, so that a slow emulator is not a failing image
SLOWDOWN = 10
#: the helper that makes the namespace and registers the emulator (a separate process:
#: it forks, and its caller may be running threads)
USERNS_HELPER = ("-m", "kiln.isolation.userns")


def find_emulator(name: str) -> str | None:
    """Where the qemu-user program ``name`` is installed (on PATH), if it is."""
    return shutil.which(name)


def binfmt_rule(arch: str, *, purpose: str, machine: str | None = None) -> str | None:
    """The binfmt_misc rule that runs ``arch`` programs here; None when they run natively.

    ``purpose`` says what needs the emulator (``testing the arm64 image python``), for
    the error raised when this machine cannot run ``arch`` programs.
    """
    machine = machine or platform.machine()
    if arch in _NATIVE.get(machine, set()):
        return None
    known = _QEMU.get(arch)
    if known is None:
        raise EnvironmentProblem(f"{purpose}: kiln cannot run {arch} programs on {machine}")
    qarch, magic, mask = known
    for name in (f"qemu-{qarch}-static", f"qemu-{qarch}"):
        emulator = find_emulator(name)
        if emulator is not None:
            return f":kiln-{qarch}:M::{magic}:{mask}:{emulator}:F"
    raise EnvironmentProblem(
        f"{purpose} needs qemu-{qarch}-static on this {machine} machine, and it is not installed",
        hint="apt-get install qemu-user-static (binfmt_misc need not be registered)",
    )


def needs_emulation(arch: str, machine: str | None = None) -> bool:
    """Whether ``arch`` programs need an emulator on this machine."""
    return arch not in _NATIVE.get(machine or platform.machine(), set())


def emulated(argv: Sequence[str], arch: str, *, purpose: str, namespace: bool = False) -> list[str]:
    """``argv`` (usually a bubblewrap command) made to run ``arch`` programs here.

    Unchanged on a machine that runs ``arch`` natively; otherwise wrapped in the
    user-namespace helper with the emulator registered in its private binfmt_misc.
    ``namespace``: always run under the helper (its 65536-id namespace), emulating only
    when ``arch`` needs it.
    """
    rule = binfmt_rule(arch, purpose=purpose)
    if rule is None and not namespace:
        return list(argv)
    binfmt = ["--binfmt", rule] if rule is not None else []
    return [sys.executable, *USERNS_HELPER, *binfmt, "--", *argv]
