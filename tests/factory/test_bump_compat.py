"""compat inside a bump: the compat apps that use the bumped image run on its new build.

Which apps use which image is read from the repository's real compat/ suite and
catalog (offline). The network tests run the real bump of ``base`` (a lock behind the
archive, as in test_bump_archive.py) with compat on, through the engine, into the local
git forge: the smallest real app, ``debian-slim-tools`` (``debian:trixie-slim`` ->
base-dev), is built with buildah and run with podman on the bump's own layouts; the
stand-in comes from the suite's cache ($KILN_CACHE/compat), as with ``make compat``.
Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.errors import InputError
from kiln.factory.activities import FactoryActivities
from kiln.factory.catalog import CatalogSteps
from kiln.factory.compatcheck import apps_using, compat_enabled
from kiln.factory.engine import connect, run_pass
from kiln.factory.model import ReconcileResult
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.wiring import production_steps
from kiln.forge import LocalGitForge
from kiln.migrate import load_catalog

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
APP = "debian-slim-tools"


def test_the_apps_of_an_image_are_those_whose_from_lines_use_only_it() -> None:
    catalog = load_catalog(ROOT / "images")
    base = apps_using("base", ROOT / "compat", catalog)
    assert [a.name for a in base.apps] == [APP]
    # java-jar builds on debian:trixie-slim (base) and runs on Temurin (java): a bump of
    # base alone cannot run it, and the evidence says so
    assert [(s.name, s.status) for s in base.skipped] == [("java-jar", "skipped")]
    assert "java" in base.skipped[0].detail
    python = apps_using("python", ROOT / "compat", catalog)
    assert [a.name for a in python.apps] == ["django-check", "fastapi-distroless", "flask-gunicorn"]
    assert apps_using("static", ROOT / "compat", catalog).apps == ()


@pytest.mark.parametrize(
    ("value", "on"), [("1", True), ("yes", True), ("", False), ("0", False), ("off", False)]
)
def test_the_environment_switch(value: str, on: bool, tmp_path: Path) -> None:
    assert compat_enabled({"KILN_FACTORY_COMPAT": value}) is on
    assert compat_enabled({}) is False  # off by default
    _git(tmp_path, "init", "-q")
    assert production_steps(tmp_path, environ={"KILN_FACTORY_COMPAT": value}).compat is on
    # the --compat flag wins over the environment
    assert production_steps(tmp_path, environ={}, compat=True).compat is True


def test_a_garbage_switch_is_an_input_error_naming_it() -> None:
    with pytest.raises(InputError, match="KILN_FACTORY_COMPAT='maybe'"):
        compat_enabled({"KILN_FACTORY_COMPAT": "maybe"})


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _catalog_with_compat(repo: Path, *, expected_output: str | None = None) -> None:
    """A catalog repository: base with a lock behind the archive, and a compat/ suite
    with the real debian-slim-tools app (its expected output replaced when given)."""
    (repo / "images").mkdir(parents=True)
    shutil.copy(CATALOG_DIR / "base.yaml", repo / "images" / "base.yaml")
    lock = json.loads((CATALOG_DIR / "base.lock.json").read_text())
    old = json.loads((DATA / "static-behind.json").read_text())["entries"]
    for arches in lock["variants"].values():
        for arch, section in arches.items():
            section["packages"] = [old.get(f"{p['name']}:{arch}", p) for p in section["packages"]]
    (repo / "images" / "base.lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    (repo / "compat").mkdir()
    shutil.copy(ROOT / "compat" / "standins.yaml", repo / "compat" / "standins.yaml")
    shutil.copytree(ROOT / "compat" / APP, repo / "compat" / APP)
    if expected_output is not None:
        declaration = repo / "compat" / APP / "compat.yaml"
        text = declaration.read_text()
        start = text.index("  output: ")
        declaration.write_text(text[:start] + f"  output: {json.dumps(expected_output)}\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "images", "compat")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "c")


def _bump(endpoint: Endpoint, steps: CatalogSteps) -> ReconcileResult:
    async def main() -> list[ReconcileResult]:
        client = await connect(endpoint)
        activities = FactoryActivities(steps, FactoryState(steps.root))
        return await run_pass(client, activities, ["base"], dry_run=False, steps=["bump"])

    (result,) = asyncio.run(main())
    return result


@pytest.mark.network
@pytest.mark.slow
def test_a_bump_runs_the_compat_app_of_the_image_and_its_result_is_in_the_pr(
    temporal: Endpoint, tmp_path: Path
) -> None:
    repo = tmp_path / "catalog"
    _catalog_with_compat(repo)
    forge = LocalGitForge(repo)
    steps = CatalogSteps(repo, forge=forge, db_url=str(tmp_path / "kiln.db"), compat=True)
    result = _bump(temporal, steps)
    assert result.outcome == "pr-opened", result
    (pr,) = forge.list()
    assert pr.checks[f"compat:{APP}"] == "pass", pr.checks
    assert all(status == "pass" for status in pr.checks.values()), pr.checks
    body = forge.body(pr.id)
    assert "| compat | debian\\-slim\\-tools | ✅ pass |" in body, body


@pytest.mark.network
@pytest.mark.slow
def test_a_failing_compat_app_fails_the_bump_naming_the_app(
    temporal: Endpoint, tmp_path: Path
) -> None:
    repo = tmp_path / "catalog"
    _catalog_with_compat(repo, expected_output="^this output never comes$")
    forge = LocalGitForge(repo)
    steps = CatalogSteps(repo, forge=forge, db_url=str(tmp_path / "kiln.db"), compat=True)
    result = _bump(temporal, steps)
    assert result.outcome == "dead-lettered", result
    assert "PolicyError" in result.reason
    assert f"compat app {APP} fails" in result.reason
    assert forge.list() == []  # no pull request for a bump whose compat app fails
    letter = FactoryState(repo).letter("base")
    assert letter is not None
    assert letter.step == "bump"
