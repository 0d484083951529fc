"""Done-means check of issue 2: `kiln lock images/python.yaml` through the real pipeline
(signed indexes from the host's mirrors, kiln's cache, the lock stage) equals apt's
closure for the same request; the runtime variant equals it minus what the spec
excludes and the documented install-time-only set."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.debian import Cache, discover_mirrors, get_distro
from kiln.net import HttpFetcher
from kiln.pipeline import ArchiveAccess, lock_spec
from kiln.spec import load_spec
from resolve.test_apt_peer import AptRoot, _reachable_without_install_time, make_apt_root

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_python_lock_equals_apt(tmp_path: Path, arch: str) -> None:
    loaded = load_spec(ROOT / "images/python.yaml")
    distro = get_distro(loaded.spec.distro)
    repo = ArchiveAccess(
        discover_mirrors(),
        Cache(tmp_path / "cache"),
        HttpFetcher(),
        clock=lambda: datetime.now(UTC),
    )
    lock = lock_spec(loaded, repo.snapshot(distro, loaded.spec.archs)).lock
    apt: AptRoot = make_apt_root(tmp_path / "apt", arch)

    dev_request = list(loaded.spec.packages_for("dev"))
    apt_dev = apt.simulate(dev_request)
    dev = {p.name: p.version for p in lock.packages("dev", arch)}
    assert dev == apt_dev

    runtime_request = list(loaded.spec.packages_for("runtime"))
    apt_runtime = apt.simulate(runtime_request)
    universe = repo.snapshot(distro, loaded.spec.archs).universe(arch)
    installed = {
        name: pkg
        for name in apt_runtime
        if name not in loaded.spec.exclude and (pkg := universe.get(name)) is not None
    }
    expected = _reachable_without_install_time(runtime_request, installed)
    runtime = {p.name: p.version for p in lock.packages("runtime", arch)}
    assert set(runtime) == expected
    assert all(apt_runtime[name] == version for name, version in runtime.items())
