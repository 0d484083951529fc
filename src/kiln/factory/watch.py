"""Watch: poll each source on its own interval and turn a change into reconcile keys.

A Temporal Schedule per source (``watch-<source>``, its own interval, overlap policy
SKIP: a slow poll is never run twice at once) starts a short ``WatchPollWorkflow``
(``kiln.factory.workflows``) at each firing: the ``poll`` activity compares the source
with what the previous poll saw (kept in ``<source>.json`` under the watch directory,
written atomically) and names the images a change concerns; the ``enqueue_keys``
activity enqueues them (signal-with-start, so a key already queued or running collapses
into that reconcile). A poll that fails fails its workflow (in the schedule's recent
actions and Temporal's UI); the schedule goes on. ``kiln.factory.engine`` creates,
updates, triggers, describes and deletes the schedules.

Sources (``Watcher``):

- ``archive``: the signed Releases (InRelease sha256) of every suite the catalog's
  distros use. When one changed, each image on that distro is locked afresh (nothing
  written) and becomes a key when the result differs from its checked-in lock.
- ``catalog``: the checkout's commits: specs or locks changed between the last HEAD
  seen and the current one.
- ``feeds``: the vulnerability database's newest snapshot per feed (``kiln db update``
  or ``--update`` here imports them): a new snapshot makes every image a key (its
  generation includes the feed state, so an image whose findings did not move settles
  at once without building).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from temporalio import activity

from kiln.errors import InputError, KilnError
from kiln.factory.activities import failure
from kiln.factory.model import valid_key
from kiln.fileio import atomic_write
from kiln.jsonlimits import read_json_file

if TYPE_CHECKING:
    from kiln.pipeline import ArchiveAccess

# ruff: noqa: PLC0415

SOURCES = ("archive", "catalog", "feeds")


DEFAULT_INTERVAL_S = 300.0
MIN_INTERVAL_S = 1.0


@dataclass
class PollInput:
    """One poll of one source (``previous`` empty: what the watch directory kept)."""

    source: str
    previous: dict[str, str] = field(default_factory=dict)


@dataclass
class PollResult:
    """The keys a change concerns, and the state to compare the next poll with."""

    keys: list[str]
    state: dict[str, str]
    note: str = ""


@dataclass
class EnqueueInput:
    """Keys to enqueue, and why."""

    keys: list[str]
    reason: str


@dataclass
class WatchPollResult:
    """What one scheduled poll of a source did: the keys it enqueued, and why."""

    source: str
    keys: list[str] = field(default_factory=list)
    note: str = ""
    failed: bool = False  # the poll failed (``note`` says why; nothing was enqueued)

    def describe(self) -> str:
        """One line: ``enqueued base, static (note)``, ``no image concerned (note)``,
        ``no change`` or, for a failed poll, its reason."""
        if self.failed:
            return self.note
        what = f"enqueued {', '.join(self.keys)}" if self.keys else "no image concerned"
        if not self.note:
            return what if self.keys else "no change"
        return f"{what} ({self.note})"


def parse_intervals(values: Sequence[str], sources: Sequence[str] = SOURCES) -> dict[str, float]:
    """``--interval`` values (``SECONDS`` for every source, ``SOURCE=SECONDS`` for one;
    the later wins) as seconds per source of ``sources`` (default 300 s)."""
    default = DEFAULT_INTERVAL_S
    per_source: dict[str, float] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        if sep and name not in SOURCES:
            raise InputError(
                f"--interval {value}: unknown source {name!r}: use {', '.join(SOURCES)}"
            )
        try:
            seconds = float(number)
        except ValueError:
            seconds = float("nan")
        if not seconds >= MIN_INTERVAL_S or seconds == float("inf"):
            raise InputError(
                f"--interval {value}: expected seconds (at least {MIN_INTERVAL_S:.0f}), "
                "as SECONDS or SOURCE=SECONDS, e.g. archive=900"
            )
        if sep:
            per_source[name] = seconds
        else:
            default = seconds
    return {s: per_source.get(s, default) for s in sources}


class Watcher(Protocol):
    """Reads a source's state and says which images changed since ``previous``."""

    def poll(self, source: str, previous: Mapping[str, str]) -> PollResult:
        """The keys concerned by what changed, and the state now."""
        ...


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        stderr = getattr(exc, "stderr", "") or str(exc)
        raise InputError(f"{root}: git {' '.join(args)} failed: {stderr.strip()}") from exc


@dataclass
class CatalogWatcher:
    """The real sources over the checkout at ``root``."""

    root: Path
    db_url: str | None = None
    repository: ArchiveAccess | None = None

    def poll(self, source: str, previous: Mapping[str, str]) -> PollResult:
        """Dispatch to the source's poll (an input error for an unknown source)."""
        if source == "archive":
            return self.archive(previous)
        if source == "catalog":
            return self.catalog(previous)
        if source == "feeds":
            return self.feeds(previous)
        raise InputError(f"unknown watch source {source!r}: use {', '.join(SOURCES)}")

    def _specs(self) -> list[Path]:
        return sorted(p for p in (self.root / "images").glob("*.yaml") if valid_key(p.stem))

    def archive(self, previous: Mapping[str, str]) -> PollResult:
        """New signed Releases -> images whose fresh lock differs from the checked-in one."""
        from kiln.debian import get_distro
        from kiln.pipeline import ArchiveAccess, lock_spec
        from kiln.resolve.lockfile import LockError, diff_locks, read_lock
        from kiln.spec import load_spec

        repo = self.repository or ArchiveAccess.from_environment()
        loaded = [load_spec(p) for p in self._specs()]
        state: dict[str, str] = {}
        for distro_id in sorted({item.spec.distro for item in loaded}):
            archs = sorted(
                {a for item in loaded if item.spec.distro == distro_id for a in item.spec.archs}
            )
            snapshot = repo.snapshot(get_distro(distro_id), archs)
            for release in snapshot.releases:
                state[f"{distro_id}/{release.suite}"] = release.inrelease_sha256
        changed = sorted(k for k in state if previous.get(k) != state[k])
        if not changed:
            return PollResult([], state)
        distros = {k.split("/")[0] for k in changed}
        keys = []
        for item in loaded:
            if item.spec.distro not in distros:
                continue
            try:
                found = read_lock(item.lock_path)
            except LockError:
                keys.append(item.spec.name)
                continue
            fresh = lock_spec(item, repo.snapshot_for(item.spec), npm=found.npm).lock
            if diff_locks(found, fresh):
                keys.append(item.spec.name)
        return PollResult(keys, state, f"new Release: {', '.join(changed)}")

    def catalog(self, previous: Mapping[str, str]) -> PollResult:
        """New commits -> the images whose spec or lock they touched."""
        head = _git(self.root, "rev-parse", "HEAD")
        state = {"HEAD": head}
        before = previous.get("HEAD")
        if before is None or before == head:
            return PollResult([], state)
        names = _git(self.root, "diff", "--name-only", before, head, "--", "images/")
        keys = sorted(
            {
                Path(n).name.removesuffix(".lock.json").removesuffix(".yaml")
                for n in names.splitlines()
                if n.endswith((".yaml", ".lock.json"))
            }
        )
        keys = [k for k in keys if valid_key(k) and (self.root / "images" / f"{k}.yaml").exists()]
        return PollResult(keys, state, f"commits {before[:12]}..{head[:12]}")

    def feeds(self, previous: Mapping[str, str]) -> PollResult:
        """A new feed snapshot in the database -> every image of the catalog."""
        from kiln.vuln.db.scan_source import open_for_scan

        data = open_for_scan(self.db_url).load(debian_sources=set(), release=None, osv_keys=set())
        state = {s.source: s.digest for s in data.snapshots}
        changed = sorted(k for k in state if previous.get(k) != state[k])
        if not changed or not previous:
            return PollResult([], state)  # the first poll only learns the state
        return PollResult(
            [p.stem for p in self._specs()], state, f"new feed data: {', '.join(changed)}"
        )


class WatchActivities:
    """The watch's activities, bound to one ``Watcher``.

    With a ``directory``, each source's last state is also kept there
    (``<source>.json``, atomic), so a watch started again compares with what the last
    one saw instead of learning the sources anew (a commit made while no watch ran is
    still seen).
    """

    def __init__(self, watcher: Watcher, directory: Path | None = None) -> None:
        self.watcher = watcher
        self.directory = directory

    def _saved(self, source: str) -> dict[str, str]:
        path = self.directory / f"{source}.json" if self.directory else None
        if path is None or not path.exists():
            return {}
        data = read_json_file(path, max_bytes=1 << 20, what="the watch state")
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise InputError(f"{path}: not a watch state (an object of strings)")
        return data

    def _save(self, source: str, state: Mapping[str, str]) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(self.directory / f"{source}.json", json.dumps(dict(state)).encode())

    def all(self) -> list[Callable[..., object]]:
        """Every activity, for ``Worker(activities=...)``."""
        return [self.poll, self.enqueue_keys]

    @activity.defn(name="poll")
    def poll(self, given: PollInput) -> PollResult:
        """Poll one source."""
        try:
            previous = given.previous or self._saved(given.source)
            result = self.watcher.poll(given.source, previous)
            self._save(given.source, result.state)
        except KilnError as exc:
            raise failure(exc) from exc
        return result

    @activity.defn(name="enqueue_keys")
    async def enqueue_keys(self, given: EnqueueInput) -> list[str]:
        """Enqueue each key (collapsing into a reconcile already queued or running)."""
        from kiln.factory.engine import enqueue

        client = activity.client()
        for key in given.keys:
            await enqueue(client, key, reason=given.reason)
        return list(given.keys)


def schedule_id(source: str) -> str:
    """The id of the source's watch schedule."""
    return f"watch-{source}"


def poll_workflow_id(source: str) -> str:
    """The id prefix of the source's poll workflows (the schedule appends the time)."""
    return f"watch-poll-{source}"
