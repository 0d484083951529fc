"""The real bump path on the real Debian archive, through the engine, into the local forge.

A catalog repository (a temporary git repository) holds images/static.yaml with a lock
that is behind the archive: the checked-in lock with the entries recorded from before
trixie-security's openssl, libzstd1, passwd and login.defs updates
(data/static-behind.json). One ``kiln factory`` pass relocks a staged copy, builds both
variants, runs the image's tests in bubblewrap, scans, and opens one pull request on the
local git forge; a second pass opens nothing new; a dry run writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.factory.activities import FactoryActivities
from kiln.factory.catalog import CatalogSteps
from kiln.factory.engine import connect, run_pass
from kiln.factory.model import ReconcileResult
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.wiring import advisory_sink
from kiln.forge import LocalGitForge

DATA = Path(__file__).parent / "data"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _behind_catalog(repo: Path) -> None:
    """A catalog repository whose static lock is behind today's archive."""
    (repo / "images").mkdir(parents=True)
    shutil.copy(CATALOG_DIR / "static.yaml", repo / "images" / "static.yaml")
    lock = json.loads((CATALOG_DIR / "static.lock.json").read_text())
    old = json.loads((DATA / "static-behind.json").read_text())["entries"]
    for arches in lock["variants"].values():
        for arch, section in arches.items():
            section["packages"] = [old.get(f"{p['name']}:{arch}", p) for p in section["packages"]]
    (repo / "images" / "static.lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "images")
    _git(
        repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "catalog"
    )


def _pass(endpoint: Endpoint, steps: CatalogSteps, *, dry_run: bool) -> ReconcileResult:
    async def main() -> list[ReconcileResult]:
        client = await connect(endpoint)
        activities = FactoryActivities(steps, FactoryState(steps.root))
        return await run_pass(client, activities, ["static"], dry_run=dry_run)

    (result,) = asyncio.run(main())
    return result


@pytest.mark.network
@pytest.mark.slow
def test_a_lock_behind_the_archive_becomes_one_tested_bump_pr(
    temporal: Endpoint, tmp_path: Path
) -> None:
    repo = tmp_path / "catalog"
    _behind_catalog(repo)
    db = tmp_path / "kiln.db"
    forge = LocalGitForge(repo)

    # a dry run first: it proposes the bump and writes nothing at all
    dry = _pass(temporal, CatalogSteps(repo, forge=forge, db_url=str(db)), dry_run=True)
    assert dry.outcome == "proposed", dry
    assert any("kiln/bump/static" in pr for pr in dry.prs)
    assert forge.list() == []
    assert "kiln/bump/static" not in _git(repo, "branch", "--list")
    assert not (repo / ".kiln" / "factory" / "results").exists()

    steps = CatalogSteps(repo, forge=forge, events=advisory_sink(str(db)), db_url=str(db))
    result = _pass(temporal, steps, dry_run=False)
    assert result.outcome == "pr-opened", result
    (pr,) = forge.list()
    assert (pr.image, pr.kind, pr.branch, pr.state) == (
        "static",
        "bump",
        "kiln/bump/static",
        "open",
    )
    assert pr.generation == result.generation
    assert pr.checks  # the image's own tests ran
    assert all(status == "pass" for status in pr.checks.values()), pr.checks
    lock = json.loads(_git(repo, "show", "kiln/bump/static:images/static.lock.json"))
    versions = {p["name"]: p["version"] for p in lock["variants"]["dev"]["amd64"]["packages"]}
    behind = json.loads((DATA / "static-behind.json").read_text())["entries"]
    assert versions["passwd"] != behind["passwd:amd64"]["version"]  # moved forward
    body = forge.body(pr.id)
    assert "passwd" in body
    assert _git(repo, "status", "--porcelain", "images") == ""  # the checkout untouched

    # the same state again: nothing new is opened, nothing is rebuilt
    again = _pass(temporal, steps, dry_run=False)
    assert again.outcome == "skipped"
    assert "already reconciled" in again.reason
    assert len(forge.list()) == 1
    assert result.steps[0].startswith("bump: proposed")
