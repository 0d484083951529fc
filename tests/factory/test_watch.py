"""Watch: polls become keys, keys become one reconcile per change.

A recorded sequence of polls (a source answering the same state again, a new state, a
garbage answer) drives a real ``WatchWorkflow`` on a real dev server; the catalog
source is tested on a real git repository.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.errors import RemoteContentError
from kiln.factory.activities import FactoryActivities
from kiln.factory.engine import connect, make_worker, settle, start_watch
from kiln.factory.model import workflow_id
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.watch import CatalogWatcher, PollResult, WatchActivities

from .fakesteps import FakeSteps, lines


class Recorded:
    """A source that answers recorded polls, one per call (the last one repeats)."""

    def __init__(self, answers: list[PollResult | str]) -> None:
        self.answers = answers
        self.seen: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def poll(self, source: str, previous: Mapping[str, str]) -> PollResult:
        with self.lock:
            self.seen.append(dict(previous))
            answer = self.answers[min(len(self.seen) - 1, len(self.answers) - 1)]
        if isinstance(answer, str):
            raise RemoteContentError(f"{source}: {answer}")
        return answer


def test_watch_polls_enqueue_keys_once_per_change(temporal: Endpoint, tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text(
        json.dumps({"static": {"generation": "r1"}, "base": {"generation": "r1"}})
    )
    recorded = Recorded(
        [
            PollResult(["static", "base"], {"trixie-security": "a"}, "new Release"),
            PollResult([], {"trixie-security": "a"}),
            "InRelease signature does not verify",  # garbage: the watch goes on
            PollResult(["static"], {"trixie-security": "a"}, "same Release, announced again"),
            PollResult([], {"trixie-security": "a"}),
        ]
    )

    async def main() -> int:
        client = await connect(temporal)
        activities = FactoryActivities(FakeSteps(tmp_path), FactoryState(tmp_path))
        worker, executor = make_worker(client, activities, watch=WatchActivities(recorded))
        try:
            async with worker:
                handle = await start_watch(client, "archive", interval=0.3, rounds=5)
                polls: int = await handle.result()
                await settle(client)
                for image in ("static", "base"):  # their latest runs, done
                    done = client.get_workflow_handle(workflow_id(image))
                    await done.result()
                return polls
        finally:
            executor.shutdown(wait=True)

    assert asyncio.run(main()) == 5
    # the state of each poll is what the next one compares with
    assert recorded.seen[:3] == [{}, {"trixie-security": "a"}, {"trixie-security": "a"}]
    builds = [x.split()[1:3] for x in lines(tmp_path / "builds.log") if x.startswith("done")]
    assert sorted(map(tuple, builds)) == [("base", "r1"), ("static", "r1")]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_catalog_source_names_the_images_a_commit_touched(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("static", "base", "cc"):
        (images / f"{name}.yaml").write_text(f"name: {name}\n")
    (tmp_path / "README.md").write_text("catalog\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "one")
    watcher = CatalogWatcher(tmp_path)
    first = watcher.poll("catalog", {})
    assert first.keys == []  # the first poll learns where the catalog is
    (images / "static.lock.json").write_text("{}\n")
    (images / "base.yaml").write_text("name: base\n# changed\n")
    (images / "gone.yaml").write_text("name: gone\n")
    (tmp_path / "README.md").write_text("catalog, changed\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "two")
    _git(tmp_path, "rm", "-q", "images/gone.yaml")
    _git(tmp_path, "commit", "-qm", "three")
    second = watcher.poll("catalog", first.state)
    assert second.keys == ["base", "static"]  # not cc, not the README, not a removed spec
    assert second.state["HEAD"] == _git(tmp_path, "rev-parse", "HEAD")
    assert watcher.poll("catalog", second.state).keys == []


@pytest.mark.network
def test_archive_source_names_the_images_whose_lock_is_behind(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("static", "base"):
        shutil.copy(CATALOG_DIR / f"{name}.yaml", images)
        shutil.copy(CATALOG_DIR / f"{name}.lock.json", images)
    # static's lock as it was before trixie-security's updates: behind the archive
    lock = json.loads((images / "static.lock.json").read_text())
    old = json.loads((Path(__file__).parent / "data" / "static-behind.json").read_text())
    for arches in lock["variants"].values():
        for arch, section in arches.items():
            section["packages"] = [
                old["entries"].get(f"{p['name']}:{arch}", p) for p in section["packages"]
            ]
    (images / "static.lock.json").write_text(json.dumps(lock))
    watcher = CatalogWatcher(tmp_path)
    first = watcher.poll("archive", {})
    assert "static" in first.keys
    assert any(k.startswith("debian-13/trixie-security") for k in first.state)
    # the same Releases again: no key, whatever the locks say
    assert watcher.poll("archive", first.state).keys == []
