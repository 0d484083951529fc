"""The local git forge, kiln's embedded default: branches and PR records in the catalog repo.

A change becomes a commit on branch ``kiln/<kind>/<image>``, built with git plumbing
(a temporary index, ``write-tree``, ``commit-tree``) so the user's working tree and
index are never touched. Pull request records are JSON documents, one per pull request
(``<id>.json``), in the tree of commits on the ref ``refs/kiln/prs``: every record
change is a new commit there, so the history of each record is ``git log refs/kiln/prs``.
The branch and the record ref move together in one ``git update-ref --stdin``
transaction with their expected old values: a crash leaves both as they were or both
moved, and two writers racing never lose an update (the loser reloads and retries).

Dates come from ``SOURCE_DATE_EPOCH`` (else the clock), the identity from
``KILN_FORGE_AUTHOR`` (``Name <email>``, else ``kiln <kiln@localhost>``), so the same
change on the same base gives the same commit ids.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kiln.epoch import source_date_epoch
from kiln.errors import InputError, PolicyError
from kiln.forge._branch import branch_commit, is_kiln_commit
from kiln.forge._git import Git, Identity, RefRaceError
from kiln.forge.evidence import CHANGE_KINDS, Evidence, render_markdown
from kiln.forge.model import PR_STATES, ChangeRequest, PrState, PullRequest, branch_name
from kiln.jsonlimits import parse_json

RECORDS_REF = "refs/kiln/prs"
_MAX_RECORD_BYTES = 4 * 1024 * 1024
_RACE_RETRIES = 8


def default_clock(environ: Mapping[str, str] = os.environ) -> Callable[[], int]:
    """``SOURCE_DATE_EPOCH`` when set, else the wall clock, in seconds."""
    fixed = source_date_epoch(environ)
    return (lambda: fixed) if fixed is not None else (lambda: int(time.time()))


@dataclass(frozen=True)
class _Record:
    """A pull request record as stored (the ``PullRequest`` plus its body and history)."""

    pr: PullRequest
    body: str
    created: int
    updated: int
    history: tuple[Mapping[str, Any], ...]
    evidence: Mapping[str, Any]

    def to_json(self) -> bytes:
        data = {
            **self.pr.to_dict(),
            "body": self.body,
            "created": self.created,
            "updated": self.updated,
            "history": [dict(entry) for entry in self.history],
            "evidence": dict(self.evidence),
        }
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


class LocalGitForge:
    """Pull requests as branches and records in one git repository (see module docstring)."""

    def __init__(
        self,
        repo: Path,
        *,
        identity: Identity | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._git = Git(repo)
        self._identity = identity or Identity()
        self._clock = clock or default_clock()

    @property
    def repo(self) -> Path:
        """The repository the forge works on."""
        return self._git.repo

    # --- reading ---------------------------------------------------------------------

    def _load(self) -> tuple[str | None, dict[int, _Record]]:
        tip = self._git.resolve(RECORDS_REF)
        if tip is None:
            return None, {}
        records: dict[int, _Record] = {}
        for name, blob in self._git.read_blobs(
            self._git.tree_of(tip), max_bytes=_MAX_RECORD_BYTES
        ).items():
            record = _parse_record(name, blob)
            records[record.pr.id] = record
        return tip, records

    def list(self) -> list[PullRequest]:
        """Every pull request record, by id."""
        _, records = self._load()
        return [records[key].pr for key in sorted(records)]

    def get(self, pr_id: int) -> PullRequest:
        """The pull request ``pr_id``, or ``InputError``."""
        _, records = self._load()
        if pr_id not in records:
            raise InputError(f"{self.repo}: no kiln pull request #{pr_id}")
        return records[pr_id].pr

    def body(self, pr_id: int) -> str:
        """The Markdown description of pull request ``pr_id``."""
        _, records = self._load()
        if pr_id not in records:
            raise InputError(f"{self.repo}: no kiln pull request #{pr_id}")
        return records[pr_id].body

    def evidence(self, pr_id: int) -> Evidence:
        """The evidence pull request ``pr_id`` was last opened or updated with."""
        _, records = self._load()
        if pr_id not in records:
            raise InputError(f"{self.repo}: no kiln pull request #{pr_id}")
        return Evidence.from_dict(records[pr_id].evidence, where=f"{RECORDS_REF}:{pr_id}.json")

    def history(self, pr_id: int) -> builtins.list[Mapping[str, Any]]:
        """What happened to pull request ``pr_id``: opened, updated, merged, closed."""
        _, records = self._load()
        if pr_id not in records:
            raise InputError(f"{self.repo}: no kiln pull request #{pr_id}")
        return list(records[pr_id].history)

    # --- writing ---------------------------------------------------------------------

    def open_or_update(self, change: ChangeRequest) -> PullRequest:
        """The pull request for ``change`` (see ``kiln.forge.model.Forge``)."""
        for _ in range(_RACE_RETRIES):
            try:
                return self._open_or_update(change)
            except RefRaceError:
                continue
        raise PolicyError(
            f"{self.repo}: {change.branch} kept moving under kiln ({_RACE_RETRIES} attempts)",
            hint="another process is writing kiln's pull requests; retry later",
        )

    def _open_or_update(self, change: ChangeRequest) -> PullRequest:
        records_tip, records = self._load()
        base = self._git.resolve(f"refs/heads/{change.base}")
        if base is None:
            raise InputError(f"{self.repo}: the base branch {change.base!r} does not exist")
        mine = [
            r for r in records.values() if (r.pr.image, r.pr.kind) == (change.image, change.kind)
        ]
        for record in mine:
            if record.pr.generation == change.generation:
                return record.pr  # never a second pull request for one generation
        now = self._clock()
        ref = f"refs/heads/{change.branch}"
        tip = self._git.resolve(ref)
        open_record = next((r for r in mine if r.pr.state == "open"), None)
        event = "opened" if open_record is None else "updated"
        heads = {r.pr.head for r in mine}
        if (
            tip is not None
            and tip not in heads
            and not is_kiln_commit(self._git, tip, change, self._identity)
        ):
            raise PolicyError(
                f"{self.repo}: the branch {change.branch} is at {tip[:12]}, which is no kiln "
                "pull request's head and not kiln's commit: it holds someone else's work",
                hint="rename or delete that branch, then run kiln again",
            )
        # an open pull request whose branch someone deleted starts again from the base
        commit = branch_commit(
            self._git,
            change,
            base=base,
            tip=tip if open_record is not None else None,
            identity=self._identity,
            when=now,
        )
        history: tuple[Mapping[str, Any], ...] = ()
        if open_record is None:
            pr_id, created = max(records, default=0) + 1, now
        else:
            pr_id = open_record.pr.id
            created, history = open_record.created, open_record.history
        previous = open_record.pr if open_record else None
        pr = change.pull_request(pr_id, previous=previous, head=commit, url=None)
        record = _Record(
            pr=pr,
            body=render_markdown(change.evidence),
            created=created,
            updated=now,
            history=(
                *history,
                {"event": event, "generation": change.generation, "commit": commit, "time": now},
            ),
            evidence=change.evidence.to_dict(),
        )
        records_commit = self._commit_record(records_tip, record, f"{event} #{pr_id}", now)
        self._git.update_refs({ref: (commit, tip), RECORDS_REF: (records_commit, records_tip)})
        return pr

    def _commit_record(self, records_tip: str | None, record: _Record, what: str, now: int) -> str:
        tree = self._git.build_tree(records_tip, {f"{record.pr.id}.json": record.to_json()})
        pr = record.pr
        message = f"kiln PR {what}: {pr.kind}/{pr.image} generation {pr.generation}\n"
        return self._git.commit_tree(
            tree,
            [records_tip] if records_tip else [],
            message,
            identity=self._identity,
            when=now,
        )

    def set_state(self, pr_id: int, state: PrState) -> PullRequest:
        """Mark pull request ``pr_id`` merged or closed (or open again); history kept."""
        for _ in range(_RACE_RETRIES):
            records_tip, records = self._load()
            if pr_id not in records:
                raise InputError(f"{self.repo}: no kiln pull request #{pr_id}")
            old = records[pr_id]
            if old.pr.state == state:
                return old.pr
            if state == "open" and any(
                r.pr.state == "open" and (r.pr.image, r.pr.kind) == (old.pr.image, old.pr.kind)
                for r in records.values()
            ):
                raise PolicyError(
                    f"{self.repo}: another {old.pr.kind} pull request for {old.pr.image} is open"
                )
            now = self._clock()
            entry = {
                "event": state,
                "generation": old.pr.generation,
                "commit": old.pr.head,
                "time": now,
            }
            record = dataclasses.replace(
                old,
                pr=dataclasses.replace(old.pr, state=state),
                updated=now,
                history=(*old.history, entry),
            )
            commit = self._commit_record(records_tip, record, f"{state} #{pr_id}", now)
            try:
                self._git.update_refs({RECORDS_REF: (commit, records_tip)})
            except RefRaceError:
                continue
            return record.pr
        raise PolicyError(f"{self.repo}: {RECORDS_REF} kept moving under kiln")

    def sync(self) -> builtins.list[PullRequest]:
        """Mark merged every open pull request whose head is on its base branch; those."""
        merged = []
        for pr in self.list():
            if pr.state != "open" or pr.head is None:
                continue
            base = self._git.resolve(f"refs/heads/{pr.base}")
            if base is not None and self._git.is_ancestor(pr.head, base):
                merged.append(self.set_state(pr.id, "merged"))
        return merged


def _parse_record(name: str, blob: bytes) -> _Record:
    where = f"{RECORDS_REF}:{name}"
    data = parse_json(
        blob, where=where, max_bytes=_MAX_RECORD_BYTES, what="the pull request record"
    )

    def fail(what: str) -> InputError:
        return InputError(f"{where}: the pull request record {what}")

    if not isinstance(data, dict):
        raise fail("is not a JSON object")
    try:
        pr_id = data["id"]
        strings = {
            k: data[k]
            for k in ("image", "kind", "branch", "generation", "state", "title", "base", "body")
        }
        checks, cves, generations = data["checks"], data["cves_fixed"], data["generations"]
        created, updated, history = data["created"], data["updated"], data["history"]
        head, url, evidence = data["head"], data["url"], data["evidence"]
    except KeyError as exc:
        raise fail(f"has no {exc.args[0]!r}") from exc
    if not isinstance(pr_id, int) or name != f"{pr_id}.json":
        raise fail("id does not match its file name")
    if not all(isinstance(v, str) for v in strings.values()):
        raise fail("has a field that is not a string")
    if strings["kind"] not in CHANGE_KINDS or strings["state"] not in PR_STATES:
        raise fail(f"has kind {strings['kind']!r} or state {strings['state']!r}")
    if strings["branch"] != branch_name(strings["kind"], strings["image"]):
        raise fail(f"branch {strings['branch']!r} is not kiln's branch for it")
    if not (isinstance(checks, dict) and all(isinstance(v, str) for v in checks.values())):
        raise fail("checks are not a map of names to results")
    if not (isinstance(cves, list) and all(isinstance(v, str) for v in cves)):
        raise fail("cves_fixed is not a list of ids")
    if not (isinstance(generations, list) and all(isinstance(v, str) for v in generations)):
        raise fail("generations is not a list")
    if not (isinstance(history, list) and all(isinstance(v, dict) for v in history)):
        raise fail("history is not a list of events")
    if not (isinstance(created, int) and isinstance(updated, int)):
        raise fail("dates are not seconds")
    if not (head is None or isinstance(head, str)) or not (url is None or isinstance(url, str)):
        raise fail("head or url is not a string")
    if not isinstance(evidence, dict):
        raise fail("evidence is not an object")
    pr = PullRequest(
        id=pr_id,
        image=strings["image"],
        kind=cast("Any", strings["kind"]),
        branch=strings["branch"],
        generation=strings["generation"],
        cves_fixed=tuple(cves),
        checks=checks,
        state=cast("Any", strings["state"]),
        url=url,
        title=strings["title"],
        base=strings["base"],
        head=head,
        generations=tuple(generations),
    )
    return _Record(pr, strings["body"], created, updated, tuple(history), evidence)
