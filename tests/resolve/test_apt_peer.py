"""Peer check: kiln's closure equals ``apt-get install --simulate --no-install-recommends``.

apt runs in a private root configured for trixie (amd64) over the host's mirrors, with
an empty dpkg status, so it installs exactly the dependency closure of the request
(with an empty status apt adds no Essential package that nothing depends on; the
``nodejs`` case checks this). The mirrors are the ones kiln itself would use
(``discover_mirrors``). The resolver reads the very ``Packages`` files apt downloaded
and verified, merged by kiln's index code into the highest version per name over
trixie, trixie-updates and trixie-security. Any difference is a resolver bug.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.debian.distro import get_distro
from kiln.debian.index import MergedUniverse, merge_tables, parse_packages
from kiln.debian.model import BinaryPackage
from kiln.debian.sources import discover_mirrors
from kiln.resolve import INSTALL_TIME_ONLY, resolve
from kiln.resolve._relations import parse_provides, parse_relations

pytestmark = pytest.mark.network

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
TRIXIE = get_distro("debian-13")
SETS = [
    ["python3.13-minimal", "libpython3.13-stdlib"],
    ["nodejs"],
    ["openjdk-21-jre-headless"],
    ["nginx"],
    ["redis-server"],
    ["postgresql-17"],
]
_INST = re.compile(r"^Inst (?P<name>\S+) (?:\[\S+\] )?\((?P<version>\S+) ")


@dataclass(frozen=True)
class AptRoot:
    path: Path
    config: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "APT_CONFIG": str(self.config), "LC_ALL": "C"}
        return subprocess.run(
            ["apt-get", *args], env=env, capture_output=True, text=True, check=False
        )

    def simulate(self, packages: list[str]) -> dict[str, str]:
        """What apt would install: name -> version, from the ``Inst`` lines."""
        done = self.run("install", "--simulate", "--no-install-recommends", "-q", *packages)
        assert done.returncode == 0, done.stderr
        installs = {}
        for line in done.stdout.splitlines():
            match = _INST.match(line)
            if match:
                installs[match["name"]] = match["version"]
        assert installs, done.stdout
        return installs

    def packages_files(self) -> list[tuple[Path, str]]:
        lists = self.path / "var/lib/apt/lists"
        files = []
        for path in sorted(lists.glob("*_dists_*_binary-amd64_Packages")):
            suite = path.name.split("_dists_", 1)[1].split("_", 1)[0]
            files.append((path, suite))
        assert {suite for _, suite in files} == set(TRIXIE.suites), files
        return files


@pytest.fixture(scope="session")
def apt_root(tmp_path_factory: pytest.TempPathFactory) -> AptRoot:
    if shutil.which("apt-get") is None or not KEYRING.exists():
        pytest.skip("needs apt-get and debian-archive-keyring (make setup installs both)")
    root = tmp_path_factory.mktemp("apt-trixie-amd64")
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d"):
        (root / sub).mkdir(parents=True)
    for sub in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    mirrors = discover_mirrors()
    main, security = mirrors.debian, mirrors.security
    codename = TRIXIE.codename
    (root / "etc/apt/sources.list.d/trixie.sources").write_text(
        f"Types: deb\nURIs: {main}\nSuites: {codename} {codename}-updates\n"
        f"Components: main\nArchitectures: amd64\nSigned-By: {KEYRING}\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {codename}-security\n"
        f"Components: main\nArchitectures: amd64\nSigned-By: {KEYRING}\n"
    )
    # APT_CONFIG replaces /etc/apt/apt.conf, and Dir makes apt read its config parts,
    # sources, preferences and state under the private root only.
    config = root / "apt.conf"
    config.write_text(
        f'Dir "{root}/";\n'
        f'Dir::State::status "{root}/var/lib/dpkg/status";\n'
        'APT::Architecture "amd64";\n'
        'APT::Architectures { "amd64"; };\n'
        'Acquire::Languages "none";\n'
        'Debug::NoLocking "true";\n'
        'APT::Sandbox::User "root";\n'
    )
    apt = AptRoot(root, config)
    done = apt.run("update", "-q")
    if done.returncode != 0 or "W: " in done.stderr or "E: " in done.stderr:
        pytest.fail(f"apt-get update in {root} failed:\n{done.stdout}\n{done.stderr}")
    return apt


@pytest.fixture(scope="session")
def apt_answers(apt_root: AptRoot) -> dict[tuple[str, ...], dict[str, str]]:
    """apt's answer for every set, computed side by side (each run rereads the cache)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        answers = pool.map(apt_root.simulate, SETS)
        return {tuple(s): answer for s, answer in zip(SETS, answers, strict=True)}


@pytest.fixture(scope="session")
def universe(apt_root: AptRoot) -> MergedUniverse:
    """kiln's own universe over the Packages files apt downloaded and verified."""
    files = {suite: path for path, suite in apt_root.packages_files()}
    tables = [
        (suite, parse_packages(files[suite].read_bytes(), arch="amd64", source=str(files[suite])))
        for suite in TRIXIE.suites  # lowest precedence first
    ]
    return merge_tables("amd64", tables)


def _reachable_without_install_time(
    requested: list[str], installed: dict[str, BinaryPackage]
) -> set[str]:
    """apt's set, walked from the request, never through an install-time-only edge."""

    def satisfiers(alt_name: str) -> Iterator[str]:
        if alt_name in installed:
            yield alt_name
        for pkg in installed.values():
            if any(p.name == alt_name for p in parse_provides(pkg)):
                yield pkg.name

    seen = set(requested)
    todo = list(requested)
    while todo:
        pkg = installed[todo.pop()]
        groups = [
            *parse_relations(pkg, "Pre-Depends", pkg.pre_depends),
            *parse_relations(pkg, "Depends", pkg.depends),
        ]
        for group in groups:
            if any(name in INSTALL_TIME_ONLY for name in group.names):
                continue
            for alt in group.alternatives:
                for name in satisfiers(alt.name):
                    if name not in seen:
                        seen.add(name)
                        todo.append(name)
    return seen


@pytest.mark.parametrize("requested", SETS, ids="+".join)
def test_closure_equals_apt(
    apt_answers: dict[tuple[str, ...], dict[str, str]],
    universe: MergedUniverse,
    requested: list[str],
) -> None:
    apt = apt_answers[tuple(requested)]

    full = resolve(requested, universe, drop_install_time_only=False, distro=TRIXIE)
    assert {p.name: p.version for p in full.packages} == apt
    assert full.cut_edges == ()

    runtime = resolve(requested, universe, drop_install_time_only=True, distro=TRIXIE)
    installed = {name: universe.get(name) for name in apt}
    assert all(pkg is not None for pkg in installed.values())
    expected = _reachable_without_install_time(
        requested,
        {k: v for k, v in installed.items() if v is not None},
    )
    assert set(runtime.names) == expected
    # Every install-time-only package apt would install is gone from the runtime set.
    assert not set(runtime.names) & set(INSTALL_TIME_ONLY)
    for edge in runtime.cut_edges:
        assert edge.reason.startswith("install-time only: ")
        assert edge.from_package in runtime.names


def test_apt_adds_no_essential_package_nothing_depends_on(
    apt_answers: dict[tuple[str, ...], dict[str, str]], universe: MergedUniverse
) -> None:
    apt = apt_answers[("nodejs",)]
    essential = sorted(n for n in apt if (p := universe.get(n)) is not None and p.essential)
    assert essential == []
    assert "coreutils" not in apt
