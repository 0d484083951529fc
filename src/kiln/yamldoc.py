"""YAML documents validated by pydantic models, with every error at ``file:line:column``.

Image specs, recipes and compat app declarations are YAML read with ruamel.yaml's
round-trip loader, which remembers where each key and item stood; a pydantic error on
``packages[3]`` then points at that line, with did-you-mean for a misspelt field.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from kiln.errors import InputError, Location

M = TypeVar("M", bound=BaseModel)


def read_limited(path: Path, *, what: str, limit: int, error: type[InputError]) -> bytes:
    """The bytes of ``path`` (a ``what`` file), refusing a missing or oversized one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} file {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise error(f"{path} is {len(data)} bytes; {what} files are limited to {limit}")
    return data


def parse_yaml_model(
    data: bytes,
    path: Path,
    model: type[M],
    *,
    what: str,
    error: type[InputError],
    hint: str | None = None,
) -> tuple[M, CommentedMap]:
    """``data`` as YAML validated by ``model``, and the tree that locates its fields.

    Every problem raises ``error`` naming the position: not UTF-8, invalid YAML, not a
    mapping, or the first validation error (the others listed as details).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"invalid YAML: {problem}", loc) from exc
    if not isinstance(tree, CommentedMap):
        raise error(f"a {what} must be a YAML mapping of fields", Location(str(path), 1, 1))
    try:
        return model.model_validate(plain(tree)), tree
    except ValidationError as exc:
        raise validation_error(exc, tree, path, model, error=error, hint=hint) from exc


def validation_error(
    exc: ValidationError,
    tree: Any,
    path: Path,
    model: type[BaseModel],
    *,
    error: type[InputError],
    hint: str | None = None,
) -> InputError:
    """The first validation error at its position; the rest as ``file:line:col`` details."""
    errors = exc.errors()
    first, rest = errors[0], errors[1:]
    loc = tuple(first["loc"])
    line, column = position(tree, loc)
    details = []
    for err in rest:
        other = tuple(err["loc"])
        l2, c2 = position(tree, other)
        details.append(f"{path}:{l2}:{c2}: {render_path(other)}: {sentence(err, other, model)}")
    return error(
        sentence(first, loc, model),
        Location(str(path), line, column, render_path(loc) or None),
        hint=hint,
        details=details,
    )


def locate(tree: Any, path: Path, field_path: Sequence[str | int]) -> Location:
    """The file position of a field path like ``("packages", 3)``."""
    line, column = position(tree, field_path)
    return Location(str(path), line, column, render_path(field_path))


def plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [plain(v) for v in node]
    return node


def sentence(err: Any, loc: tuple[Any, ...], model: type[BaseModel]) -> str:
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


def position(tree: Any, loc: Sequence[str | int]) -> tuple[int, int]:
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


def render_path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
