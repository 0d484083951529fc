"""A private apt root over the host's mirrors, for side-by-side runs against apt.

Used by the benchmarks and by tests/vuln/test_debian_archive_apt.py: apt reads only this root's
sources, lists and an empty dpkg status, so it resolves exactly as on a fresh system.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from kiln.debian import Distro, discover_mirrors


def make_apt_root(
    root: Path,
    distro: Distro,
    arch: str,
    *,
    suites: Mapping[str, str] | None = None,
    unchecked: Collection[str] = (),
) -> list[str]:
    """Create the tree and return the apt options that point apt at it.

    ``suites`` maps suite -> mirror URL (default: the distro's suites on the host's
    mirrors); apt reads the ``unchecked`` ones even past their Release's Valid-Until.
    """
    urls = suites if suites is not None else discover_mirrors().suite_urls(distro)
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "var/lib/apt/lists/partial",
                "var/cache/apt/archives/partial", "var/lib/dpkg"):  # fmt: skip
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text("")
    lines = [
        f"deb [arch={arch} signed-by={distro.keyring}"
        f"{' check-valid-until=no' if suite in unchecked else ''}] {url} {suite} main"
        for suite, url in urls.items()
    ]
    (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    return [
        "-o", f"Dir={root}",
        "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
        "-o", f"Dir::Etc::sourcelist={root}/etc/apt/sources.list",
        "-o", "Dir::Etc::sourceparts=-",
        "-o", f"APT::Architecture={arch}",
        "-o", "APT::Architectures::=",
        "-o", f"APT::Architectures::={arch}",
        "-o", "Acquire::Languages=none",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def apt_update(options: Sequence[str]) -> None:
    subprocess.run(["apt-get", *options, "-qq", "update"], check=True, capture_output=True)


def apt_simulate(options: Sequence[str], packages: Sequence[str]) -> list[str]:
    """Names apt would install, from ``apt-get install --simulate`` Inst lines."""
    out = subprocess.run(
        ["apt-get", *options, "install", "--simulate", "--no-install-recommends", "-qq",
         *packages],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return sorted(
        line.split()[1].split(":")[0] for line in out.splitlines() if line.startswith("Inst ")
    )
