"""Read an image spec from YAML, reporting every problem as ``file:line:column``.

The YAML is read with ruamel.yaml's round-trip loader, which remembers where each key
and item stood, so a pydantic error on ``packages[3]`` points at that line.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from kiln.errors import InputError, Location
from kiln.spec.model import ImageSpec

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
        line, column = _position(self._tree, field_path)
        return Location(str(self.path), line, column, _render_path(field_path))

    @property
    def lock_path(self) -> Path:
        return lock_path_for(self.path)


def lock_path_for(spec_path: Path) -> Path:
    """``images/python.yaml`` locks into ``images/python.lock.json``."""
    return spec_path.with_name(spec_path.stem + ".lock.json")


def load_spec(path: str | Path) -> LoadedSpec:
    """Parse and validate the spec at ``path``; raise ``SpecError`` naming the position."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}") from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"{path} is {len(data)} bytes; specs are limited to {MAX_SPEC_BYTES}")
    return parse_spec(data, path)


def parse_spec(data: bytes, path: Path) -> LoadedSpec:
    """Parse spec bytes (no disk access); ``path`` is used for messages and the lock."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", loc) from exc
    if not isinstance(tree, CommentedMap):
        raise SpecError("a spec must be a YAML mapping of fields", Location(str(path), 1, 1))
    try:
        spec = ImageSpec.model_validate(_plain(tree))
    except ValidationError as exc:
        raise _spec_error(exc, tree, path) from exc
    return LoadedSpec(path, spec, hashlib.sha256(data).hexdigest(), tree)


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    return node


def _spec_error(exc: ValidationError, tree: Any, path: Path) -> SpecError:
    errors = exc.errors()
    first, rest = errors[0], errors[1:]
    loc = tuple(first["loc"])
    line, column = _position(tree, loc)
    message = _sentence(first, loc, ImageSpec)
    details = []
    for err in rest:
        other = tuple(err["loc"])
        l2, c2 = _position(tree, other)
        sentence = _sentence(err, other, ImageSpec)
        details.append(f"{path}:{l2}:{c2}: {_render_path(other)}: {sentence}")
    return SpecError(
        message,
        Location(str(path), line, column, _render_path(loc) or None),
        hint="`kiln schema` prints every field the spec accepts",
        details=details,
    )


def _sentence(err: Any, loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        owner = _model_at(model, loc[:-1])
        fields = _field_names(owner) if owner else []
        close = difflib.get_close_matches(name, fields, n=1)
        return f"unknown field {name!r}" + (f" (did you mean {close[0]}?)" if close else "")
    if kind == "missing":
        return f"required field {str(loc[-1])!r} is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk the model's annotations along ``loc`` to the nested model there, if any."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or part in ("dev",):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next(
            (f for n, f in current.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _position(tree: Any, loc: Sequence[str | int]) -> tuple[int, int]:
    """1-based line and column of the deepest node of ``loc`` present in the YAML tree."""
    line, column = 1, 1
    node = tree
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, column = (v + 1 for v in node.lc.key(part))
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, column = (v + 1 for v in node.lc.item(part))
            node = node[part]
        else:
            break
    return line, column


def _render_path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
