"""One backport build per fix, shared by every image that needs it (real archive, real build).

A catalog repository with base and static (both carry liblz4-1 in their -dev variant, so
both want lz4's CVE-2025-62813 fix from Debian unstable), a database the debian-archive
feed filled for it, a real Temporal dev server and two activity slots: one factory pass
backports lz4 for both images at once. The sandboxed package build is counted where
``kiln.pipeline.backport`` calls it (``SourceBuilder.build_recipe``, wrapped, the real
build still runs): one build, two pull requests on the local git forge with the same
recipe and patch bytes, each image rebuilt from kiln's repository, tested and scanned.
A second pass opens nothing new and builds nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from fixtures.archive_cases import require_unstable_only_fix
from fixtures.catalog import CATALOG_DIR
from kiln.factory.activities import FactoryActivities
from kiln.factory.catalog import CatalogSteps
from kiln.factory.engine import connect, run_pass
from kiln.factory.model import ReconcileResult
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.forge import LocalGitForge
from kiln.pipeline.scan import FeedRequest, update_feed
from kiln.pipeline.source import SourceBuilder

CVE = "CVE-2025-62813"
IMAGES = ("base", "static")


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


def _catalog(repo: Path) -> None:
    (repo / "images").mkdir(parents=True)
    for name in IMAGES:
        for suffix in (".yaml", ".lock.json"):
            shutil.copy(CATALOG_DIR / f"{name}{suffix}", repo / "images" / f"{name}{suffix}")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "images")
    _git(
        repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "catalog"
    )


def _pass(endpoint: Endpoint, steps: CatalogSteps) -> list[ReconcileResult]:
    async def main() -> list[ReconcileResult]:
        client = await connect(endpoint)
        activities = FactoryActivities(steps, FactoryState(steps.root))
        return await run_pass(
            client, activities, list(IMAGES), dry_run=False, workers=2, steps=("backport",)
        )

    return asyncio.run(main())


@pytest.mark.network
@pytest.mark.slow
def test_two_images_needing_one_fix_share_one_package_build(
    temporal: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "catalog"
    _catalog(repo)
    db = tmp_path / "kiln.db"
    # every scan reads the factory's database: the default one is empty here (in a full
    # run it is whatever another test left, which once made "CVEs fixed" come out empty)
    monkeypatch.setenv("KILN_DB", str(tmp_path / "not-this-one.db"))
    update_feed(FeedRequest("debian-archive", catalog=repo / "images"), db=str(db))
    for name in IMAGES:
        require_unstable_only_fix(repo, name, "lz4", CVE, db=str(db))

    builds: list[str] = []
    lock = threading.Lock()
    real = SourceBuilder.build_recipe

    def counted(self: SourceBuilder, recipe_path: Path, **kwargs: Any) -> Any:
        with lock:
            builds.append(recipe_path.read_text())
        return real(self, recipe_path, **kwargs)

    monkeypatch.setattr(SourceBuilder, "build_recipe", counted)
    forge = LocalGitForge(repo)
    steps = CatalogSteps(repo, forge=forge, db_url=str(db))
    results = {r.image: r for r in _pass(temporal, steps)}

    for name in IMAGES:
        assert results[name].outcome == "pr-opened", results[name]
    assert len(builds) == 1, builds  # lz4 built once for both images
    prs = {pr.image: pr for pr in forge.list()}
    assert sorted(prs) == sorted(IMAGES)
    assert {pr.kind for pr in prs.values()} == {"backport"}
    recipe = {name: _git(repo, "show", f"{prs[name].branch}:recipes/lz4.yaml") for name in IMAGES}
    patch = {
        name: _git(repo, "show", f"{prs[name].branch}:recipes/patches/lz4/{CVE}.patch")
        for name in IMAGES
    }
    assert recipe["base"] == recipe["static"]
    assert patch["base"] == patch["static"]
    assert b"lz4" in recipe["base"]
    for name in IMAGES:
        # each PR carries its own image's spec (kiln's repository) and relocked lock
        spec = _git(repo, "show", f"{prs[name].branch}:images/{name}.yaml")
        assert b"kiln" in spec
        assert prs[name].cves_fixed == (CVE,)
        assert f"kiln backport: {name}" in forge.body(prs[name].id)
        checks = prs[name].checks
        # lz4's cmake build runs no test suite in dh_auto_test: that check says "skipped"
        assert "fail" not in checks.values(), checks
        assert checks["test:build"] == checks["test:scan"] == "pass", checks
        assert checks[f"test:image tests ({name}-dev)"] == "pass", checks
    entries = [p for p in (repo / ".kiln" / "factory" / "packages").iterdir() if p.is_dir()]
    assert len(entries) == 1

    # the same state again: nothing opened, nothing built
    again = _pass(temporal, steps)
    assert {r.outcome for r in again} == {"skipped"}, again
    assert len(forge.list()) == 2
    assert len(builds) == 1
