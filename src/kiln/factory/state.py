"""The factory's own records in the checkout: last result per image, dead letters.

``.kiln/factory/results/<image>.json`` holds the last reconcile's result,
``.kiln/factory/dead-letters/<image>.json`` an image whose step kept failing (with the
reason) until ``kiln factory retry IMAGE`` removes it. Each file is written atomically
(temp then rename), so a killed worker leaves the old record or the new one. What is
queued or in flight is Temporal's to say (``engine.status``), not these files'.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from kiln.errors import InputError
from kiln.factory.model import DeadLetter, ReconcileResult, valid_key
from kiln.factory.server import state_dir
from kiln.fileio import atomic_write
from kiln.jsonlimits import read_json_file

_MAX_RECORD = 1 << 20
SETTLED_KEPT = 64
SETTLED_OUTCOMES = ("up-to-date", "pr-opened", "pr-exists", "pending-upstream-fix")
T = TypeVar("T", ReconcileResult, DeadLetter)


def _record(cls: type[T], path: Path) -> T:
    """A record file as ``cls``; a malformed one is an input error naming the file."""
    data = read_json_file(path, max_bytes=_MAX_RECORD, what=f"the factory record {path.name}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(data, dict) or not set(data) <= set(fields):
        raise InputError(f"{path}: not a {cls.__name__} record (unexpected keys)")
    for name, value in data.items():
        want: Any = {"int": int, "str": str, "list[str]": list}.get(str(fields[name].type))
        if want is not None and not isinstance(value, want):
            raise InputError(f"{path}: {name} should be {fields[name].type}, not {value!r}")
        if want is list and not all(isinstance(v, str) for v in value):
            raise InputError(f"{path}: {name} should be a list of strings")
    try:
        return cls(**data)
    except TypeError as exc:
        raise InputError(f"{path}: not a {cls.__name__} record: {exc}") from exc


@dataclass(frozen=True)
class FactoryState:
    """The records under one checkout's ``.kiln/factory``."""

    root: Path  # the catalog checkout

    @property
    def directory(self) -> Path:
        """``.kiln/factory`` of the checkout."""
        return state_dir(self.root) / "factory"

    def _path(self, kind: str, image: str) -> Path:
        if not valid_key(image):
            raise InputError(f"{image!r} is not an image name (images/NAME.yaml)")
        return self.directory / kind / f"{image}.json"

    def _write(self, kind: str, image: str, record: object) -> None:
        path = self._path(kind, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(asdict(record), indent=2, sort_keys=True).encode())  # type: ignore[call-overload]

    def _all(self, kind: str, cls: type[T]) -> Iterator[T]:
        directory = self.directory / kind
        if directory.is_dir():
            for path in sorted(directory.glob("*.json")):
                yield _record(cls, path)

    # -- last results

    def record_result(self, result: ReconcileResult) -> None:
        """Keep ``result`` as the image's last one."""
        self._write("results", result.image, result)
        if result.outcome in SETTLED_OUTCOMES and result.generation:
            self.settle(result.image, result.generation)

    def result(self, image: str) -> ReconcileResult | None:
        """The image's last result, if any."""
        path = self._path("results", image)
        return _record(ReconcileResult, path) if path.exists() else None

    def results(self) -> list[ReconcileResult]:
        """Every image's last result, by image name."""
        return list(self._all("results", ReconcileResult))

    # -- settled generations (a flapping source must not rebuild one twice)

    def settle(self, image: str, generation: str) -> None:
        """Remember that ``generation`` of ``image`` was reconciled (the last 64 kept)."""
        settled = [g for g in self.settled(image) if g != generation]
        settled.append(generation)
        path = self._path("generations", image)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(settled[-SETTLED_KEPT:]).encode())

    def settled(self, image: str) -> list[str]:
        """The generations of ``image`` already reconciled, oldest first."""
        path = self._path("generations", image)
        if not path.exists():
            return []
        data = read_json_file(path, max_bytes=_MAX_RECORD, what="the settled generations")
        if not isinstance(data, list) or not all(isinstance(g, str) for g in data):
            raise InputError(f"{path}: not a list of generations")
        return data

    # -- dead letters

    def dead_letter(self, letter: DeadLetter) -> None:
        """Keep ``letter`` until ``retry`` removes it."""
        self._write("dead-letters", letter.image, letter)

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead-lettered image, by name."""
        return list(self._all("dead-letters", DeadLetter))

    def letter(self, image: str) -> DeadLetter | None:
        """The image's dead letter, if it has one."""
        path = self._path("dead-letters", image)
        return _record(DeadLetter, path) if path.exists() else None

    def release(self, image: str) -> DeadLetter | None:
        """Remove the image's dead letter (``retry``); the letter it had, if any."""
        letter = self.letter(image)
        if letter is not None:
            os.unlink(self._path("dead-letters", image))
        return letter
