"""The catalog (images/*.yaml): every image locks, builds, passes its tests, reproducibly.

The network tests build staged copies of the specs and their checked-in locks with
``--refresh`` against the real archive (a copy relocks when Debian moved on since the
lock was checked in: see ``fixtures.catalog``), for the host architecture only (both
archs of 8 images x 2 variants, twice, would not fit CI's time; `kiln build` without
--arch builds both and `bench/build.py` times them). Each image is built twice into
different output directories, the second time with ``--no-cache``, and both builds must
give byte-identical index.json files (hence identical index digests).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.compat.kilnimages import kiln_build_argv, stage_specs
from kiln.resolve.lockfile import read_lock
from kiln.sandbox.unpack import host_arch
from kiln.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ("static", "base", "cc", "python", "node", "java", "nginx", "redis")


def _spec(name: str) -> Path:
    return ROOT / "images" / f"{name}.yaml"


def test_the_catalog_is_complete() -> None:
    assert sorted(p.stem for p in (ROOT / "images").glob("*.yaml")) == sorted(CATALOG)


@pytest.mark.parametrize("name", CATALOG)
def test_every_spec_has_a_current_checked_in_lock(name: str) -> None:
    """The lock belongs to the spec as it is now (kiln build would relock otherwise)."""
    loaded = load_spec(_spec(name))
    lock = read_lock(loaded.lock_path)
    assert lock.spec_sha256 == loaded.sha256, f"{loaded.lock_path} is stale: run kiln lock"
    for variant in loaded.spec.variant_names():
        for arch in loaded.spec.archs:
            assert lock.packages(variant, arch), f"{name} {variant}/{arch} has no packages"


@pytest.mark.parametrize("name", CATALOG)
def test_every_runtime_variant_runs_as_nonroot_and_is_tested(name: str) -> None:
    spec = load_spec(_spec(name)).spec
    assert spec.accounts.run_as == "nonroot"
    assert spec.tests, f"{name} carries no tests"
    assert "dev" in spec.variants


def _index_digest(layout: Path) -> str:
    return "sha256:" + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest()


@pytest.mark.network
@pytest.mark.parametrize("name", CATALOG)
def test_catalog_image_builds_passes_its_tests_and_is_reproducible(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    arch = host_arch()
    spec = load_spec(_spec(name)).spec
    if arch not in spec.archs:
        pytest.skip(f"{name} is not built for the host architecture {arch}")
    first, second = tmp_path / "first", tmp_path / "second"
    staged = staged_spec(name, tmp_path / "specs")
    build = ["build", str(staged), "--arch", arch]
    assert main([*build, "--refresh", "--output", str(first)]) == 0, capsys.readouterr().err
    layouts = [first / spec.name, *(first / f"{spec.name}-{v}" for v in spec.variants)]
    for layout in layouts:
        assert (layout / "hardening.json").is_file()
        code = main(["test", str(layout), "--arch", arch])
        out = capsys.readouterr()
        assert code == 0, f"{layout.name}: image tests failed\n{out.out}\n{out.err}"
    assert main([*build, "--no-cache", "--output", str(second)]) == 0
    for layout in layouts:
        again = second / layout.name
        assert _index_digest(again) == _index_digest(layout), f"{layout.name} is not reproducible"


@pytest.mark.network
def test_the_compat_build_path_passes_with_a_deliberately_stale_lock(tmp_path: Path) -> None:
    """What `kiln compat` runs (staged copies, kiln build --refresh) on a lock naming a
    libc6 that the pool does not have: the copy is relocked and built, and the
    repository's lock is left as it was."""
    checked_in = (ROOT / "images" / "base.lock.json").read_bytes()
    (spec,) = stage_specs(ROOT / "images", ["base"], tmp_path / "specs")
    lock = spec.with_name("base.lock.json")
    data = json.loads(lock.read_text())
    for arches in data["variants"].values():
        for arch_lock in arches.values():
            for package in arch_lock["packages"]:
                if package["name"] == "libc6":
                    package["version"] = "2.0-1"
                    package["filename"] = f"pool/main/g/glibc/libc6_2.0-1_{package['arch']}.deb"
    lock.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    argv = [*kiln_build_argv([spec], tmp_path / "out", host_arch()), "--variant", "runtime"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr
    assert "refreshed" in result.stdout
    assert "libc6 2.0-1 →" in result.stdout
    assert "libc6_2.0-1_" not in lock.read_text()
    assert (tmp_path / "out" / "base" / "index.json").is_file()
    assert (ROOT / "images" / "base.lock.json").read_bytes() == checked_in
