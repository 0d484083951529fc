"""Watch: Temporal Schedules fire polls, polls become keys, keys become reconciles.

Everything runs on a real dev server: the schedules are created, updated, triggered and
deleted for real; recorded polls (a source failing with an input error, then answering)
drive real ``WatchPollWorkflow`` runs; the catalog source is a real git repository.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from fixtures.catalog import CATALOG_DIR
from kiln.errors import InputError
from kiln.factory.activities import FactoryActivities
from kiln.factory.engine import (
    connect,
    make_worker,
    poll_now,
    schedule_watch,
    settle,
    stop_watch,
    watch_status,
)
from kiln.factory.model import workflow_id
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.factory.watch import (
    CatalogWatcher,
    PollResult,
    WatchActivities,
    Watcher,
    WatchPollResult,
    parse_intervals,
    schedule_id,
)

from .fakesteps import FakeSteps

T = TypeVar("T")
DAY = 86400.0  # tests trigger polls themselves: a schedule fires on its own at 00:00 UTC


class Recorded:
    """A source that answers recorded polls, one per call (the last one repeats); a
    string answer is raised as an input error (a malformed source)."""

    def __init__(self, answers: list[PollResult | str]) -> None:
        self.answers = answers
        self.seen: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def poll(self, source: str, previous: Mapping[str, str]) -> PollResult:
        with self.lock:
            self.seen.append(dict(previous))
            answer = self.answers[min(len(self.seen) - 1, len(self.answers) - 1)]
        if isinstance(answer, str):
            raise InputError(f"{source}: {answer}")
        return answer


def _with_worker(
    endpoint: Endpoint,
    directory: Path,
    watcher: Watcher,
    body: Callable[[Client], Awaitable[T]],
) -> T:
    """Run ``body`` while an in-process worker (FakeSteps for reconciles, ``watcher``
    for polls, poll state in ``directory/watch``) serves the queue."""

    async def main() -> T:
        client = await connect(endpoint)
        activities = FactoryActivities(FakeSteps(directory), FactoryState(directory))
        watch = WatchActivities(watcher, directory / "watch")
        worker, executor = make_worker(client, activities, watch=watch)
        try:
            async with worker:
                return await body(client)
        finally:
            executor.shutdown(wait=True)

    return asyncio.run(main())


async def _exists(client: Client, workflow: str) -> bool:
    try:
        await client.get_workflow_handle(workflow).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def test_schedules_one_per_source_with_its_interval_updated_by_a_second_watch(
    temporal: Endpoint,
) -> None:
    async def main() -> None:
        client = await connect(temporal)
        first = parse_intervals(["3600", "archive=900", "feeds=7200"])
        assert first == {"archive": 900.0, "catalog": 3600.0, "feeds": 7200.0}
        assert await schedule_watch(client, first) == dict.fromkeys(first, "created")
        for source, seconds in first.items():
            description = await client.get_schedule_handle(schedule_id(source)).describe()
            (interval,) = description.schedule.spec.intervals
            assert interval.every == timedelta(seconds=seconds)
            assert description.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
            assert not description.schedule.policy.pause_on_failure
        # watch again with another interval: updated in place, not a failure or a copy
        second = parse_intervals(["archive=1200"], ["archive"])
        assert await schedule_watch(client, second) == {"archive": "updated"}
        again = await client.get_schedule_handle(schedule_id("archive")).describe()
        (interval,) = again.schedule.spec.intervals
        assert interval.every == timedelta(seconds=1200)
        rows = await watch_status(client)
        assert [(w.source, w.interval_s) for w in rows] == [
            ("archive", 1200.0),
            ("catalog", 3600.0),
            ("feeds", 7200.0),
        ]
        assert all(w.next_run and not w.last_run for w in rows)  # planned, never polled
        # --stop: gone (and a second stop finds nothing to delete)
        assert await stop_watch(client, ["archive", "feeds"]) == ["archive", "feeds"]
        assert [w.source for w in await watch_status(client)] == ["catalog"]
        assert await stop_watch(client) == ["catalog"]
        assert await stop_watch(client) == []
        assert await watch_status(client) == []

    asyncio.run(main())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["gopher=60"], "unknown source 'gopher'"),
        (["archive=soon"], "expected seconds"),
        (["0.5"], "at least 1"),
        (["nan"], "expected seconds"),
        (["inf"], "expected seconds"),
        (["archive="], "expected seconds"),
    ],
)
def test_bad_intervals_are_input_errors_naming_the_value(values: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_intervals(values)
    assert values[0] in str(caught.value)


def test_a_poll_result_says_what_it_did() -> None:
    assert WatchPollResult("archive", ["base"], "new Release: x").describe() == (
        "enqueued base (new Release: x)"
    )
    # a Release changed, but no image's lock moved with it
    assert WatchPollResult("archive", [], "new Release: x").describe() == (
        "no image concerned (new Release: x)"
    )
    assert WatchPollResult("catalog").describe() == "no change"
    assert WatchPollResult("feeds", [], "boom", failed=True).describe() == "boom"


def test_a_failing_poll_is_recorded_and_the_schedule_goes_on(
    temporal: Endpoint, tmp_path: Path
) -> None:
    (tmp_path / "world.json").write_text(json.dumps({"static": {"generation": "r1"}}))
    recorded = Recorded(
        [
            "InRelease signature does not verify",  # the first firing fails
            PollResult(["static"], {"trixie-security": "a"}, "new Release"),
        ]
    )

    async def body(client: Client) -> None:
        await schedule_watch(client, {"archive": DAY})
        failed = await poll_now(client, "archive")
        assert failed.failed
        assert "poll failed" in failed.note
        assert "InRelease signature does not verify" in failed.note
        (row,) = await watch_status(client)
        assert (row.last_result, row.paused) == ("failed", False)
        assert "InRelease signature does not verify" in row.last_detail
        assert not await _exists(client, workflow_id("static"))  # nothing enqueued
        # the schedule is still there, and its next firing polls and enqueues
        ok = await poll_now(client, "archive")
        assert (ok.failed, ok.keys) == (False, ["static"])
        await settle(client)
        await client.get_workflow_handle(workflow_id("static")).result()
        (row,) = await watch_status(client)
        assert (row.last_result, row.last_detail, row.polls) == (
            "ok",
            "enqueued static (new Release)",
            2,
        )

    _with_worker(temporal, tmp_path, recorded, body)
    assert len(recorded.seen) == 2  # an input error is not retried
    # the failed poll saved no state; the second one's is kept for the next poll
    saved = json.loads((tmp_path / "watch" / "archive.json").read_text())
    assert saved == {"trixie-security": "a"}


def test_a_triggered_poll_enqueues_exactly_the_images_a_commit_touched(
    temporal: Endpoint, tmp_path: Path
) -> None:
    repo = tmp_path / "catalog"
    images = repo / "images"
    images.mkdir(parents=True)
    for name in ("static", "base", "cc"):
        (images / f"{name}.yaml").write_text(f"name: {name}\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    world = {n: {"generation": "r1"} for n in ("static", "base", "cc")}
    (tmp_path / "world.json").write_text(json.dumps(world))

    async def body(client: Client) -> list[list[str]]:
        await schedule_watch(client, {"catalog": DAY})
        first = await poll_now(client, "catalog")  # learns where the catalog is
        (images / "base.yaml").write_text("name: base\n# changed\n")
        (repo / "README.md").write_text("not an image\n")
        _git(repo, "add", ".")
        _git(repo, "commit", "-qm", "two")
        second = await poll_now(client, "catalog")
        third = await poll_now(client, "catalog")  # nothing new since
        await settle(client)
        assert await _exists(client, workflow_id("base"))
        assert not await _exists(client, workflow_id("static"))
        assert not await _exists(client, workflow_id("cc"))
        return [first.keys, second.keys, third.keys]

    assert _with_worker(temporal, tmp_path, CatalogWatcher(repo), body) == [[], ["base"], []]
    saved = json.loads((tmp_path / "watch" / "catalog.json").read_text())
    assert saved == {"HEAD": _git(repo, "rev-parse", "HEAD")}
    (result,) = FactoryState(tmp_path).results()
    assert result.image == "base"


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
