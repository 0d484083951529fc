"""kiln.pipeline.packagecache: one backport build per (source, version, patch set, recipe).

The cache is the component under test; the build it guards is the callable it is given
(``backport_patches`` passes ``SourceBuilder.build_recipe``). Here that callable writes
a .deb and a log like a build does and counts its calls, so the tests see exactly how
many builds the cache let through. The real build through the factory is
tests/factory/test_backport_shared.py (network).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.pipeline.packagecache import PackageBuildCache, StagedFiles, build_key
from kiln.recipes.build import BuildOutput

PATCH = b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"


def _key(**change: object) -> str:
    args: dict[str, object] = {
        "source": "lz4",
        "version": "1.10.0-4",
        "patches": [("CVE-2025-62813.patch", PATCH, (("Origin", "upstream"),))],
        "cves": ["CVE-2025-62813"],
        "release": "trixie",
        "arch": "amd64",
        "recipe": None,
        "tests": [],
    }
    args.update(change)
    return build_key(
        str(args["source"]),
        str(args["version"]),
        args["patches"],  # type: ignore[arg-type]
        cves=args["cves"],  # type: ignore[arg-type]
        release=str(args["release"]),
        arch=str(args["arch"]),
        recipe=args["recipe"],  # type: ignore[arg-type]
        tests=args["tests"],  # type: ignore[arg-type]
    )


class Builds:
    """Stage and build callables that count their calls (the seam backport_patches uses)."""

    def __init__(self, *, stamp: str = "day-1", seconds: float = 0.0, fail: bool = False):
        self.staged = 0
        self.built = 0
        self.stamp = stamp
        self.seconds = seconds
        self.fail = fail
        self.lock = threading.Lock()

    def stage(self, staging: Path) -> StagedFiles:
        with self.lock:
            self.staged += 1
        staging.mkdir(parents=True)
        recipe = staging / "lz4.yaml"
        text = f"source: lz4\n# staged {self.stamp}\n".encode()
        recipe.write_bytes(text)
        patch = PATCH + self.stamp.encode()
        return StagedFiles(
            recipe,
            {"recipes/lz4.yaml": text, "recipes/patches/lz4/CVE-2025-62813.patch": patch},
            {"CVE-2025-62813.patch": patch},
        )

    def build(self, recipe: Path, out_dir: Path) -> BuildOutput:
        with self.lock:
            self.built += 1
        time.sleep(self.seconds)  # a second worker arrives while this one builds
        if self.fail:
            raise InputError("the package's tests failed")
        out_dir.mkdir(parents=True)
        deb = out_dir / "liblz4-1_1.10.0-4+kiln1_amd64.deb"
        deb.write_bytes(b"!<arch>\n" + recipe.read_bytes())
        log = out_dir / "lz4_1.10.0-4+kiln1.build.log"
        log.write_text("dh_auto_test\n")
        return BuildOutput(
            source="lz4",
            version="1.10.0-4+kiln1",
            debs=(deb,),
            buildinfo=None,
            log=log,
            buildflags="",
            root_sha256="0" * 64,
            duration=12.5,
            patches=("CVE-2025-62813.patch",),
            cves=("CVE-2025-62813",),
        )


def test_the_key_moves_with_each_input_and_not_with_the_day() -> None:
    base = _key()
    assert _key() == base
    assert _key(version="1.10.0-5") != base
    assert _key(patches=[("CVE-2025-62813.patch", PATCH + b" ", ())]) != base
    assert _key(recipe=b"source: lz4\n") != base
    assert _key(tests=['{"name": "t"}']) != base
    assert _key(arch="arm64") != base


def test_two_workers_at_once_build_once_and_share_the_recipe_bytes(tmp_path: Path) -> None:
    cache = PackageBuildCache(tmp_path / "packages")
    key = _key()
    first = Builds(seconds=0.5)
    results: dict[str, object] = {}

    def worker(name: str, builds: Builds) -> None:
        # each worker opens the cache itself, as two activities do
        results[name] = PackageBuildCache(cache.root).build_once(key, builds.stage, builds.build)

    threads = [
        threading.Thread(target=worker, args=("a", first)),
        threading.Thread(target=worker, args=("b", first)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first.built == 1
    assert first.staged == 1
    a, b = results["a"], results["b"]
    assert {a.reused, b.reused} == {False, True}  # type: ignore[attr-defined]
    assert a.files == b.files  # type: ignore[attr-defined]
    assert a.output.debs == b.output.debs  # type: ignore[attr-defined]
    assert a.output.debs[0].is_file()  # type: ignore[attr-defined]
    # a later backport (another day: its staging would differ) gets the first bytes
    later = Builds(stamp="day-2")
    again = cache.build_once(key, later.stage, later.build)
    assert later.built == 0
    assert again.files == a.files  # type: ignore[attr-defined]
    assert b"day-1" in again.files["recipes/lz4.yaml"]
    # another patch set is another build
    other = cache.build_once(_key(version="1.10.0-5"), later.stage, later.build)
    assert later.built == 1
    assert not other.reused


def test_a_failed_build_leaves_no_entry_and_the_next_one_builds(tmp_path: Path) -> None:
    cache = PackageBuildCache(tmp_path / "packages")
    key = _key()
    broken = Builds(fail=True)
    with pytest.raises(InputError, match="tests failed"):
        cache.build_once(key, broken.stage, broken.build)
    assert cache.load(key) is None
    fine = Builds()
    built = cache.build_once(key, fine.stage, fine.build)
    assert fine.built == 1
    assert not built.reused


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: (entry / "build.json").write_text("{not json"),
        lambda entry: (entry / "build.json").write_text('{"format": 1}'),
        lambda entry: next((entry / "packages").glob("*.deb")).unlink(),
        lambda entry: (entry / "build.json").write_text(
            json.dumps(
                {
                    **json.loads((entry / "build.json").read_text()),
                    "files": ["../../../etc/passwd"],
                }
            )
        ),
    ],
    ids=["garbage", "no-output", "deb-missing", "path-escape"],
)
def test_a_damaged_entry_is_built_again(tmp_path: Path, damage: object) -> None:
    cache = PackageBuildCache(tmp_path / "packages")
    key = _key()
    builds = Builds()
    cache.build_once(key, builds.stage, builds.build)
    damage(cache.root / key)  # type: ignore[operator]
    rebuilt = cache.build_once(key, builds.stage, builds.build)
    assert builds.built == 2
    assert not rebuilt.reused
    assert rebuilt.files["recipes/lz4.yaml"].startswith(b"source: lz4")


def test_a_key_that_is_not_a_digest_is_refused(tmp_path: Path) -> None:
    cache = PackageBuildCache(tmp_path / "packages")
    builds = Builds()
    with pytest.raises(InputError, match="not a package build key"):
        cache.build_once("../escape", builds.stage, builds.build)
    assert builds.built == 0
    assert not (tmp_path / "escape").exists()


def test_prune_removes_unused_entries_and_dead_partials_but_not_live_ones(
    tmp_path: Path,
) -> None:
    cache = PackageBuildCache(tmp_path / "packages")
    old, recent, building = _key(version="1"), _key(version="2"), _key(version="3")
    for key in (old, recent):
        cache.build_once(key, Builds().stage, Builds().build)
    now = time.time()
    for path in (cache.root / old).rglob("*"):  # built 40 days ago, never taken since
        os.utime(path, (now - 40 * 86400, now - 40 * 86400))
    os.utime(cache.root / recent / "build.json", (now - 40 * 86400,) * 2)
    assert cache.load(recent) is not None  # taken today: its "used" stamp moves
    dead = cache.root / f"{old}.partial"  # a killed worker's leftovers
    dead.mkdir()
    live = cache.root / f"{building}.partial"  # another worker is building this one
    live.mkdir()
    with (cache.root / f"{building}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = cache.prune(max_age=30 * 86400, now=now)
    assert sorted(removed) == sorted([old, f"{old}.partial"])
    assert not (cache.root / old).exists()
    assert not dead.exists()
    assert cache.load(recent) is not None
    assert live.is_dir()
    assert (cache.root / f"{old}.lock").exists()  # lock files stay (see prune)
    assert cache.prune(max_age=30 * 86400, now=now) == [f"{building}.partial"]
