"""A configure-style check run in the real build sandbox (kiln.recipes.build.run_sandboxed).

It is libarchive's "whether compiler supports visibility annotations" test
(configure.ac: CFLAGS="$CFLAGS -fvisibility=hidden -Werror", then AC_LINK_IFELSE), on
the command line autoconf writes (``$CC -o conftest $CFLAGS $CPPFLAGS $LDFLAGS
conftest.c``), with the flags dpkg-buildflags gives in the sandbox under
``hardening=+all`` (libarchive's debian/rules). It also reports the _FORTIFY_SOURCE
level the compiler ends up with on that line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.recipes.build import run_sandboxed

# What kiln wrote into /etc/dpkg/buildflags.conf before: fortify in CFLAGS, which
# autoconf puts before CPPFLAGS and dpkg's -D_FORTIFY_SOURCE=2, so every compile warned
# that it was redefined (and level 2 won).
OLD_CONF = (
    "APPEND CFLAGS -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3\n"
    "APPEND CXXFLAGS -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3\n"
    "APPEND LDFLAGS -Wl,-z,now\n"
)

_SCRIPT = r"""
set -u
cd /tmp
eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
cat > conftest.c <<'EOF'
int foo( void ) __attribute__((visibility("default")));
int main (void) { return 0; }
EOF
if cc -o conftest $CFLAGS -fvisibility=hidden -Werror $CPPFLAGS $LDFLAGS conftest.c; then
  echo "probe-visibility: yes"
else
  echo "probe-visibility: no"
fi
level=$(cc $CFLAGS $CPPFLAGS -dM -E conftest.c 2>/dev/null \
  | sed -n 's/^#define _FORTIFY_SOURCE //p')
echo "probe-fortify: ${level:-none}"
"""


@dataclass(frozen=True)
class ProbeResult:
    visibility: str  # configure's answer: "yes" or "no"
    fortify: str  # the effective _FORTIFY_SOURCE level, "none" when undefined
    log: str


def configure_probe(
    root: Path, build_dir: Path, log: Path, env: Mapping[str, str] | None = None
) -> ProbeResult:
    code = run_sandboxed(root, build_dir, ["sh", "-c", _SCRIPT], log=log, workdir="/tmp", env=env)
    text = log.read_text()
    assert code == 0, text
    answers = dict(
        line.removeprefix("probe-").split(": ", 1)
        for line in text.splitlines()
        if line.startswith("probe-")
    )
    return ProbeResult(answers["visibility"], answers["fortify"], text)


def conf_as_environment(conf: str) -> dict[str, str]:
    """buildflags.conf's ``APPEND FLAG value`` lines as the ``DEB_FLAG_APPEND`` variables.

    dpkg-buildflags(1) applies both the same way (after the vendor defaults), so a test
    with the host's read-only ``/`` as the root can still use the flags kiln writes.
    """
    env: dict[str, str] = {}
    for line in conf.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        action, flag, value = line.split(None, 2)
        assert action == "APPEND", line
        key = f"DEB_{flag}_APPEND"
        env[key] = f"{env[key]} {value}" if key in env else value
    return env
