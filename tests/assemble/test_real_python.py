"""The python image from the real Debian 13 archive: builds twice identically, runs its tests.

Marked ``network``: it downloads the locked .debs (cached afterwards) from the mirrors in
the host's apt sources.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kiln.debian import get_distro
from kiln.pipeline import ArchiveAccess, locked_to_binary
from kiln.pipeline.build import build_variant
from kiln.resolve.lockfile import read_lock
from kiln.sandbox import resolve_image, run_in_rootfs, runner, unpack_image
from kiln.spec import load_spec

SPEC = Path(__file__).resolve().parents[2] / "images" / "python.yaml"
MiB = 1024 * 1024

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def debs() -> dict[str, list[Path]]:
    loaded = load_spec(SPEC)
    lock = read_lock(loaded.lock_path)
    repo = ArchiveAccess.from_environment()
    distro = get_distro(lock.distro)
    return {
        arch: repo.fetch(distro, [locked_to_binary(p) for p in arch_lock.packages])
        for arch, arch_lock in lock.variants["runtime"].items()
    }


def test_python_runtime_is_reproducible_small_and_works(
    debs: dict[str, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    loaded = load_spec(SPEC)
    lock = read_lock(loaded.lock_path)
    one = build_variant(loaded, lock, "runtime", debs, output=tmp_path / "a")
    two = build_variant(loaded, lock, "runtime", debs, output=tmp_path / "b")
    assert one.index_digest == two.index_digest
    amd64 = next(i for i in one.images if i.arch == "amd64")
    assert sum(layer.size for layer in amd64.layers) <= 20 * MiB
    report = json.loads((one.layout / "hardening.json").read_text())
    assert all(r["summary"]["setid_stripped"] == 0 for r in report["reports"])

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    image = resolve_image(one.layout, arch="amd64")
    unpacked = unpack_image(image, tmp_path / "rootfs")
    outcomes = runner.run_tests(unpacked, runner.tests_of(unpacked))
    assert outcomes
    assert [o.status for o in outcomes] == ["passed"] * len(outcomes), [
        (o.test.name, o.message, o.result.stderr[-500:] if o.result else "") for o in outcomes
    ]
    os_release = (unpacked.rootfs / "usr/lib/os-release").read_text()
    assert 'VERSION_ID="13"' in os_release
    assert "ID=debian" in os_release
    shell = run_in_rootfs(unpacked.rootfs, ["/bin/sh", "-c", "true"], uid=65532, gid=65532, env={})
    assert shell.exit_code != 0  # the runtime image has no shell
