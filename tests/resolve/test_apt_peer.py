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
from collections.abc import Iterator, Mapping
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
from kiln.resolve.apt_order import apt_cache_order

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
    # Beyond the six: apt keeps back libreoffice-core-nogui for libreoffice-core here,
    ["libreoffice"],
    # and picks php8.4-phpdbg among six equal providers of phpapi-20240924 (cache order).
    ["php-mailparse"],
]
# (set, arch): every set on amd64, and the python and nginx images on arm64 too.
CASES = [(s, "amd64") for s in SETS] + [(SETS[0], "arm64"), (SETS[3], "arm64")]
_INST = re.compile(r"^Inst (?P<name>\S+) (?:\[\S+\] )?\((?P<version>\S+) ")

Answers = dict[tuple[tuple[str, ...], str], dict[str, str]]


@dataclass(frozen=True)
class AptRoot:
    """A private apt configuration and state for one architecture of trixie."""

    path: Path
    config: Path
    arch: str

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

    def universe(self) -> tuple[MergedUniverse, Mapping[str, int]]:
        """kiln's universe over the Packages files apt downloaded, and apt's cache order."""
        lists = self.path / "var/lib/apt/lists"
        files = {
            path.name.split("_dists_", 1)[1].split("_", 1)[0]: path
            for path in lists.glob(f"*_dists_*_binary-{self.arch}_Packages")
        }
        assert set(files) == set(TRIXIE.suites), files
        texts = [files[suite].read_text(encoding="utf-8") for suite in TRIXIE.suites]
        tables = [
            (suite, parse_packages(text, arch=self.arch, source=suite))
            for suite, text in zip(TRIXIE.suites, texts, strict=True)  # lowest first
        ]
        return merge_tables(self.arch, tables), apt_cache_order(texts, arch=self.arch)


def make_apt_root(root: Path, arch: str) -> AptRoot:
    """Configure ``root`` for trixie on ``arch`` over kiln's mirrors and ``apt-get update``."""
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d"):
        (root / sub).mkdir(parents=True)
    for sub in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    mirrors = discover_mirrors()
    codename = TRIXIE.codename
    (root / "etc/apt/sources.list.d/trixie.sources").write_text(
        f"Types: deb\nURIs: {mirrors.debian}\nSuites: {codename} {codename}-updates\n"
        f"Components: main\nArchitectures: {arch}\nSigned-By: {KEYRING}\n\n"
        f"Types: deb\nURIs: {mirrors.security}\nSuites: {codename}-security\n"
        f"Components: main\nArchitectures: {arch}\nSigned-By: {KEYRING}\n"
    )
    # APT_CONFIG replaces /etc/apt/apt.conf, and Dir makes apt read its config parts,
    # sources, preferences and state under the private root only.
    config = root / "apt.conf"
    config.write_text(
        f'Dir "{root}/";\n'
        f'Dir::State::status "{root}/var/lib/dpkg/status";\n'
        f'APT::Architecture "{arch}";\n'
        f'APT::Architectures {{ "{arch}"; }};\n'
        'Acquire::Languages "none";\n'
        'Debug::NoLocking "true";\n'
        'APT::Sandbox::User "root";\n'
    )
    apt = AptRoot(root, config, arch)
    done = apt.run("update", "-q")
    if done.returncode != 0 or "W: " in done.stderr or "E: " in done.stderr:
        pytest.fail(f"apt-get update in {root} failed:\n{done.stdout}\n{done.stderr}")
    return apt


@pytest.fixture(scope="session")
def apt_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AptRoot]:
    """One private apt root per architecture, updated once for the whole session."""
    if shutil.which("apt-get") is None or not KEYRING.exists():
        pytest.skip("needs apt-get and debian-archive-keyring (make setup installs both)")
    archs = sorted({arch for _, arch in CASES})
    with ThreadPoolExecutor(max_workers=len(archs)) as pool:
        roots = pool.map(
            lambda arch: make_apt_root(tmp_path_factory.mktemp(f"apt-trixie-{arch}"), arch),
            archs,
        )
        return dict(zip(archs, roots, strict=True))


@pytest.fixture(scope="session")
def apt_answers(apt_roots: dict[str, AptRoot]) -> Answers:
    """apt's answer for every case, computed side by side (each run rereads the cache)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        answers = pool.map(lambda case: apt_roots[case[1]].simulate(case[0]), CASES)
        return {(tuple(s), a): answer for (s, a), answer in zip(CASES, answers, strict=True)}


@pytest.fixture(scope="session")
def universes(
    apt_roots: dict[str, AptRoot],
) -> dict[str, tuple[MergedUniverse, Mapping[str, int]]]:
    return {arch: root.universe() for arch, root in apt_roots.items()}


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


@pytest.mark.parametrize(("requested", "arch"), CASES, ids=[f"{'+'.join(s)}-{a}" for s, a in CASES])
def test_closure_equals_apt(
    apt_answers: Answers,
    universes: dict[str, tuple[MergedUniverse, Mapping[str, int]]],
    requested: list[str],
    arch: str,
) -> None:
    apt = apt_answers[(tuple(requested), arch)]
    universe, order = universes[arch]

    full = resolve(
        requested, universe, drop_install_time_only=False, distro=TRIXIE, apt_order=order
    )
    assert {p.name: p.version for p in full.packages} == apt
    assert full.cut_edges == ()

    runtime = resolve(
        requested, universe, drop_install_time_only=True, distro=TRIXIE, apt_order=order
    )
    installed = {name: universe.get(name) for name in apt}
    expected = _reachable_without_install_time(
        requested, {k: v for k, v in installed.items() if v is not None}
    )
    assert set(runtime.names) == expected
    # Every install-time-only package apt would install is gone from the runtime set.
    assert not set(runtime.names) & set(INSTALL_TIME_ONLY)
    for edge in runtime.cut_edges:
        assert edge.reason.startswith("install-time only: ")
        assert edge.from_package in runtime.names


def test_apt_adds_no_essential_package_nothing_depends_on(
    apt_answers: Answers, universes: dict[str, tuple[MergedUniverse, Mapping[str, int]]]
) -> None:
    apt = apt_answers[(("nodejs",), "amd64")]
    universe, _ = universes["amd64"]
    essential = sorted(n for n in apt if (p := universe.get(n)) is not None and p.essential)
    assert essential == []
    assert "coreutils" not in apt
