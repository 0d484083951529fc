"""Read an image spec from YAML, reporting every problem as ``file:line:column``.

The YAML machinery (positions, did-you-mean) is kiln.yamldoc's, shared with recipes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import InputError, Location
from kiln.spec.model import ImageSpec
from kiln.yamldoc import locate, parse_yaml_model, read_limited

MAX_SPEC_BYTES = 1024 * 1024


class SpecError(InputError):
    """An image spec is not valid YAML or does not fit the spec model."""


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed spec with where it came from, its digest and a way to locate fields."""

    path: Path
    spec: ImageSpec
    sha256: str
    _tree: Any

    def locate(self, field_path: Sequence[str | int]) -> Location:
        """The file position of a field path like ``("packages", 3)``."""
        return locate(self._tree, self.path, field_path)

    @property
    def lock_path(self) -> Path:
        return lock_path_for(self.path)


def lock_path_for(spec_path: Path) -> Path:
    """``images/python.yaml`` locks into ``images/python.lock.json``."""
    return spec_path.with_name(spec_path.stem + ".lock.json")


def load_spec(path: str | Path) -> LoadedSpec:
    """Parse and validate the spec at ``path``; raise ``SpecError`` naming the position."""
    path = Path(path)
    return parse_spec(read_limited(path, what="spec", limit=MAX_SPEC_BYTES, error=SpecError), path)


def parse_spec(data: bytes, path: Path) -> LoadedSpec:
    """Parse spec bytes (no disk access); ``path`` is used for messages and the lock."""
    spec, tree = parse_yaml_model(
        data, path, ImageSpec, what="spec", error=SpecError,
        hint="`kiln schema` prints every field the spec accepts",
    )  # fmt: skip
    return LoadedSpec(path, spec, hashlib.sha256(data).hexdigest(), tree)
