"""A bump whose tests fail, repaired by the agent inside the staged files, becomes one PR.

The catalog's static spec carries a broken test (its CA bundle pattern wants one digit);
its lock no longer belongs to the spec, so the factory relocks and builds it for real and
the image's own test fails in bubblewrap. The agent (kiln.factory.agent) is driven by a
scripted OpenAI-compatible endpoint on loopback (no model is reachable here; see
test_agent.py): it rewrites images/static.yaml and reruns the step, which rebuilds and
retests for real. The PR carries the spec fix, the new lock and the agent's transcript.
Without the agent the same failure dead-letters the image (test_engine.py covers that).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.factory.activities import FactoryActivities
from kiln.factory.agent import Agent, AgentConfig, Ledger
from kiln.factory.catalog import CatalogSteps
from kiln.factory.engine import connect, run_pass
from kiln.factory.model import ReconcileResult
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.forge import LocalGitForge

from .test_agent import Endpoint as ModelEndpoint
from .test_agent import final, tool_calls

GOOD = '    stdout: "^([2-9][0-9]{2}|1[0-9]{2})$"\n'
BROKEN = '    stdout: "^[0-9]$"\n'


@pytest.mark.network
@pytest.mark.slow
def test_the_agent_repairs_a_failing_test_and_the_pr_carries_its_transcript(
    temporal: Endpoint, tmp_path: Path
) -> None:
    good = (CATALOG_DIR / "static.yaml").read_text()
    assert GOOD in good
    repo = tmp_path / "catalog"
    (repo / "images").mkdir(parents=True)
    (repo / "images" / "static.yaml").write_text(good.replace(GOOD, BROKEN))
    shutil.copy(CATALOG_DIR / "static.lock.json", repo / "images")
    who = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "images"], [*who, "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)

    model = ModelEndpoint(
        [
            tool_calls(("read_log", {"offset": 0, "length": 4096})),
            tool_calls(("write_file", {"path": "images/static.yaml", "content": good})),
            tool_calls(("rerun_step", {})),
            final("unreachable: the rerun passed"),
        ]
    )
    forge = LocalGitForge(repo)
    agent = Agent(
        AgentConfig(model.url, "scripted", timeout=30),
        ledger=Ledger(tmp_path / "ledger.json"),
    )
    steps = CatalogSteps(repo, forge=forge, db_url=str(tmp_path / "kiln.db"), agent=agent)

    async def once() -> list[ReconcileResult]:
        client = await connect(temporal)
        activities = FactoryActivities(steps, FactoryState(repo))
        return await run_pass(client, activities, ["static"], dry_run=False)

    try:
        (result,) = asyncio.run(once())
    finally:
        model.close()
    assert result.outcome == "pr-opened", result
    (pr,) = forge.list()
    assert all(status == "pass" for status in pr.checks.values()), pr.checks
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", "kiln/bump/static:images/static.yaml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert shown == good  # the agent's fix is in the PR, not in the checkout
    assert (repo / "images" / "static.yaml").read_text() == good.replace(GOOD, BROKEN)
    body = forge.body(pr.id)
    assert "rerun" in body  # the transcript is in the evidence
    assert "write" in body
    # the failing log the agent read named the failing test
    first = model.requests[1]["messages"]
    assert any("CA bundle" in str(m.get("content")) for m in first)
