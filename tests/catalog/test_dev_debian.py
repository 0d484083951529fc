"""Every catalog -dev image is a configured Debian system, like debian:trixie-slim.

Network (the Debian archive): each -dev image is built for this machine's architecture
and checked in bubblewrap: ``dpkg --audit`` is clean, every alternative dpkg has
registered is linked where ``update-alternatives --get-selections`` says (and no link in
/etc/alternatives belongs to none), ``which``, ``awk`` and ``pager`` resolve. node-dev
and nginx-dev then run ``apt-get install -y curl`` in a podman container, and base-dev
is compared with a debian:trixie-slim equivalent bootstrapped with mmdebstrap from the
same mirrors (docs/dev-images.md lists the intended differences).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.compat.containers import Store
from kiln.debian.sources import discover_mirrors
from kiln.sandbox import resolve_image, unpack_image
from kiln.sandbox.unpack import host_arch, remove_rootfs

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

CATALOG = ("base", "cc", "java", "nginx", "node", "python", "redis", "static")

#: What each image reports: dpkg's audit, the alternatives and what they link to.
REPORT = r"""
set -u
echo "audit:$(dpkg --audit 2>&1 | tr '\n' ' ')"
update-alternatives --get-selections | while read -r name mode path; do
    link=$(sed -n 2p "/var/lib/dpkg/alternatives/$name")
    echo "selection:$name:$path:$(readlink "/etc/alternatives/$name"):$(readlink "$link"):$link"
done
for f in /etc/alternatives/*; do
    name=${f##*/}
    [ "$name" = README ] && continue
    # a master group is named by its file, a slave by a line in its group's file
    [ -f "/var/lib/dpkg/alternatives/$name" ] \
        || grep -qx "$name" /var/lib/dpkg/alternatives/* || echo "orphan:$name"
done
for cmd in which awk pager; do echo "command:$cmd:$(command -v "$cmd")"; done
"""


class Layouts:
    """The catalog's -dev layouts, built on first use (one `kiln build` each)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[str, Path] = {}

    def dev(self, name: str) -> Path:
        if name not in self.built:
            out = self.root / name
            spec = staged_spec(name, self.root / f"{name}-spec")
            argv = ["build", str(spec), "--refresh", "--output", str(out), "--variant", "dev"]
            assert main([*argv, "--arch", host_arch()]) == 0
            self.built[name] = out / f"{name}-dev"
        return self.built[name]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Layouts:
    return Layouts(tmp_path_factory.mktemp("dev-layouts"))


def _sh(rootfs: Path, script: str) -> str:
    argv = [
        "bwrap", "--ro-bind", str(rootfs), "/", "--dev", "/dev", "--proc", "/proc",
        "--tmpfs", "/tmp", "--unshare-net", "--clearenv",
        "--setenv", "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "/bin/sh", "-c", script,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


Unpack = Callable[[str], Path]


@pytest.fixture
def rootfs_of(layouts: Layouts, tmp_path: Path) -> Iterator[Unpack]:
    made: list[Path] = []

    def unpack(name: str) -> Path:
        dest = tmp_path / name
        unpack_image(resolve_image(layouts.dev(name)), dest)
        made.append(dest)
        return dest

    yield unpack
    for dest in made:
        remove_rootfs(dest)


@pytest.mark.parametrize("name", CATALOG)
def test_dev_is_configured_with_its_alternatives(name: str, rootfs_of: Unpack) -> None:
    rootfs = rootfs_of(name)
    lines = _sh(rootfs, REPORT).splitlines()
    assert "audit:" in lines  # nothing unpacked, half-configured or missing
    selections = [line.split(":")[1:] for line in lines if line.startswith("selection:")]
    assert {s[0] for s in selections} >= {"awk", "which", "pager"}
    for alt, path, chosen, master_target, master in selections:
        assert chosen == path, f"/etc/alternatives/{alt} -> {chosen}, selected {path}"
        assert master_target == f"/etc/alternatives/{alt}", f"{master} -> {master_target}"
    assert [line for line in lines if line.startswith("orphan:")] == []
    commands = dict(line.split(":")[1:] for line in lines if line.startswith("command:"))
    assert commands == {"which": "/usr/bin/which", "awk": "/usr/bin/awk", "pager": "/usr/bin/pager"}


@pytest.fixture
def store() -> Iterator[Store]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    # podman refuses a runroot path longer than 50 characters: not under pytest's tmp_path
    directory = Path(tempfile.mkdtemp(prefix="kiln-dev-"))
    yield Store.under(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("name", ["node", "nginx"])
def test_apt_get_install_runs_maintainer_scripts_in_a_container(
    name: str, layouts: Layouts, store: Store
) -> None:
    layout = layouts.dev(name)
    index = json.loads((layout / "index.json").read_text())
    [tag] = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    ref = f"localhost/kiln-test/{name}-dev:test"
    source = f"oci:{layout}:{tag}"
    pulled = subprocess.run(
        ["skopeo", "copy", source, f"{store.transport}{ref}"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    script = (
        "set -e; apt-get update -qq; apt-get install -y -qq curl >/dev/null;"
        " curl --version | head -n1; dpkg --audit; echo audit-clean;"
        " update-alternatives --get-selections | cut -d' ' -f1 | tr '\\n' ' '"
    )
    argv = store.run_argv(ref, f"kiln-apt-{name}")
    argv[argv.index(ref) : argv.index(ref)] = ["--rm"]
    done = subprocess.run(
        [*argv, "/bin/sh", "-c", script], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert done.stdout.splitlines()[0].startswith("curl ")
    assert "audit-clean" in done.stdout
    assert "awk" in done.stdout.split()


SLIM_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
#: packages base-dev has that debian:trixie-slim has not: the image's own (runtime) set
INTENDED_EXTRA = {"ca-certificates", "netbase", "openssl"}

COMPARED = r"""
dpkg-query -W -f 'package:${Package} ${Version} ${db:Status-Abbrev}\n'
echo "links:$(ls /etc/alternatives | tr '\n' ' ')"
update-alternatives --get-selections | sed 's/^/selection:/'
"""


@dataclass(frozen=True)
class DpkgFacts:
    versions: dict[str, tuple[str, str]]  # package -> (version, dpkg -l's status letters)
    links: list[str]
    selections: list[str]

    @property
    def packages(self) -> set[str]:
        return set(self.versions)


def _facts(rootfs: Path) -> DpkgFacts:
    lines = _sh(rootfs, COMPARED).splitlines()
    packages = [line.split()[:3] for line in lines if line.startswith("package:")]
    [links] = [line for line in lines if line.startswith("links:")]
    return DpkgFacts(
        versions={name.removeprefix("package:"): (v, state) for name, v, state in packages},
        links=links.removeprefix("links:").split(),
        selections=[" ".join(line.split()) for line in lines if line.startswith("selection:")],
    )


def test_base_dev_matches_an_mmdebstrap_slim(rootfs_of: Unpack, tmp_path: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    mirrors = discover_mirrors()
    slim = tmp_path / "slim"
    slim.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "slim.tar"
        argv = [
            "mmdebstrap", "--variant=minbase", "--format=tar", "--quiet",
            *(f"--dpkgopt={opt}" for opt in SLIM_EXCLUDES),
            "trixie", str(tarball),
            f"deb {mirrors.debian} trixie main",
            f"deb {mirrors.debian} trixie-updates main",
            f"deb {mirrors.security} trixie-security main",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        subprocess.run(["tar", "-C", str(slim), "-xf", str(tarball)], check=True)
    debian = _facts(slim)
    kiln = _facts(rootfs_of("base"))
    assert kiln.packages - debian.packages == INTENDED_EXTRA
    assert debian.packages - kiln.packages == set()
    # the same versions from the same archive, every one installed (dpkg -l's "ii")
    assert {p: kiln.versions[p] for p in debian.packages} == debian.versions
    assert {state for _, state in kiln.versions.values()} == {"ii"}
    assert kiln.links == debian.links
    assert kiln.selections == debian.selections


def test_base_dev_is_reproducible(tmp_path: Path) -> None:
    """Same lock, same bytes: the replayed scripts leave nothing of the build machine."""
    spec = staged_spec("base", tmp_path / "spec")
    digests = []
    for run in ("first", "second"):
        out = tmp_path / run
        argv = ["build", str(spec), "--refresh", "--no-cache", "--output", str(out)]
        assert main([*argv, "--variant", "dev", "--arch", host_arch()]) == 0
        index = json.loads((out / "base-dev" / "index.json").read_text())
        digests.append([m["digest"] for m in index["manifests"]])
    assert digests[0] == digests[1]
