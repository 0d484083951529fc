"""Generated catalog images share their base layer: two real images (tree and zstd,
Debian 13, locked today against the real archive, built from verified .debs) carry the
same base layer blob, which the second build takes from the layer cache instead of
compressing it again; a third build from an empty layer cache writes the same bytes."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from kiln.debian.cache import default_cache_root
from kiln.factory.catalogbuild import ImageJob, build_and_test, jobs_for, plan
from kiln.spec.family import SHARED_BASE

ROOT = Path(__file__).resolve().parents[2]


def _cache(tmp: Path, name: str) -> Path:
    """A cache root lending the shared verified .debs and indexes, no layouts or layers."""
    shared, cache = default_cache_root(), tmp / name
    cache.mkdir()
    for part in ("sha256", "derived", "meta"):
        if (shared / part).is_dir():
            (cache / part).symlink_to(shared / part)
    return cache


def _members(layout: Path, digest: str) -> set[str]:
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    with tarfile.open(fileobj=io.BytesIO(blob.read_bytes()), mode="r:gz") as tar:
        return set(tar.getnames())


def _job(jobs: list[ImageJob], name: str) -> ImageJob:
    return next(j for j in jobs if j.name == name)


@pytest.mark.network
@pytest.mark.slow
def test_two_generated_images_share_one_base_layer_built_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = plan(ROOT, None, names=["tree", "zstd"])
    assert all(i.spec["layering"] == "shared" for i in found.images)
    assert found.images[0].spec["base-packages"] == list(SHARED_BASE["debian-13"])
    state = tmp_path / "state"
    only = {"tree": ["runtime"], "zstd": ["runtime"]}
    jobs = jobs_for(state, found.images, run_tests=False, variants=only)
    monkeypatch.setenv("KILN_CACHE", str(_cache(tmp_path, "cache")))

    tree = build_and_test(_job(jobs, "tree"))
    zstd = build_and_test(_job(jobs, "zstd"))
    for outcome in (tree, zstd):
        assert not outcome.error, outcome.error
        assert outcome.variants[0].failures == [], outcome.variants[0].failures
    a, b = tree.variants[0], zstd.variants[0]
    assert len(a.layers) == len(b.layers) == 2
    assert a.layers[0] == b.layers[0]  # the base layer: same versions, same bytes
    assert a.layers[1] != b.layers[1]
    assert (a.layers_reused, b.layers_reused) == (0, 1)  # built once, then reused

    out = Path(_job(jobs, "tree").output)
    base = _members(out / "tree", a.layers[0])
    rest = _members(out / "tree", a.layers[1])
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in base
    assert "usr/bin/tree" in rest
    assert "usr/bin/tree" not in base
    assert "usr/bin/zstd" in _members(out / "zstd", b.layers[1])

    # the reused blob is what a build without any layer cache writes
    monkeypatch.setenv("KILN_CACHE", str(_cache(tmp_path, "cold")))
    again = build_and_test(_job(jobs, "zstd"))
    assert again.variants[0].layers == b.layers
    assert again.variants[0].layers_reused == 0
    recorded = json.loads((state / "results" / "zstd.json").read_text())
    assert recorded["variants"][0]["layers"] == b.layers
