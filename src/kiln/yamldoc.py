"""YAML documents validated by pydantic models, with every error at ``file:line:column``.

Image specs, recipes, policy files, kiln's config and compat declarations are YAML read
by ``load_yaml``: ruamel.yaml's round-trip loader, which remembers where each key and
item stood (a pydantic error on ``packages[3]`` then points at that line, with
did-you-mean for a misspelt field), restricted to the plain data these files need.

Every document is hostile until parsed, so the loader refuses, with the position, what
YAML (https://yaml.org/spec/1.2.2/) allows but kiln's files never need and an attacker
can use: anchors and aliases (an alias bomb of a few hundred bytes expands to
gigabytes), explicit tags (``!!float abc`` runs a constructor on any text), directives,
merge keys, non-text or complex mapping keys, unquoted dates, over-long numbers,
non-printable characters and nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError
from ruamel.yaml.events import AliasEvent, DocumentStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode
from ruamel.yaml.scanner import RoundTripScanner

from kiln.errors import InputError, Location

M = TypeVar("M", bound=BaseModel)

#: Deepest nesting of mappings and sequences accepted (specs need about six levels).
MAX_DEPTH = 32
#: Longest number accepted, in characters (Python refuses ints of over 4300 digits).
MAX_NUMBER_CHARS = 64
# YAML 1.2's c-printable (§5.1) without NEL and the Unicode line and paragraph
# separators, which some readers take for line breaks and others do not.
_NOT_PRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_STR_TAG = "tag:yaml.org,2002:str"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


class _RefusedYAMLError(MarkedYAMLError):
    """YAML that is valid but outside what kiln's documents may use."""


def _refuse(problem: str, mark: StreamMark | None) -> _RefusedYAMLError:
    return _RefusedYAMLError(problem=problem, problem_mark=mark)


class _DepthLimitedScanner(RoundTripScanner):
    """ruamel.yaml's scanner, refusing flow nesting past ``MAX_DEPTH`` as it reads it.

    The composer's depth check alone comes late for ``[[[[...`` on one line: each ``[``
    may start a simple key, and the scanner looks up to 1024 characters ahead for it at
    a cost that grows with the nesting (about 2 s for 1,000 levels).
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:  # noqa: N803 - ruamel's name
        if self.flow_level >= MAX_DEPTH:
            raise _refuse(f"nested more than {MAX_DEPTH} levels deep", self.reader.get_mark())
        super().fetch_flow_collection_start(TokenClass, to_push)


class _PlainDataComposer(Composer):
    """ruamel.yaml's composer, refusing everything but plain nested data (see module)."""

    def compose_document(self) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, DocumentStartEvent) and (event.version or event.tags):
            raise _refuse("YAML directives (%YAML, %TAG) are not accepted", event.start_mark)
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            raise _refuse(
                f"aliases (*{event.anchor}) are not accepted: write the value out",
                event.start_mark,
            )
        if event.anchor is not None:
            raise _refuse(f"anchors (&{event.anchor}) are not accepted", event.start_mark)
        tag = getattr(event, "ctag", None)
        if tag is not None:
            written = f"{tag.handle or ''}{tag.suffix or ''}" or str(tag)
            raise _refuse(
                f"explicit tags ({written}) are not accepted: write a plain or quoted value",
                event.start_mark,
            )
        if self.depth >= MAX_DEPTH:
            raise _refuse(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        node = super().compose_node(parent, index)
        if isinstance(node, ScalarNode):
            _check_scalar(node)
        elif isinstance(node, MappingNode):
            for key, _ in node.value:
                _check_key(key)
        return node


def _check_scalar(node: ScalarNode) -> None:
    if _SURROGATE.search(node.value):
        # "\ud83d\ude00" (as JSON writes U+1F600) is one character; a lone half of such
        # a pair is none, and no UTF-8 file, path or config can hold it
        try:
            node.value = node.value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            raise _refuse(
                "a \\u escape gives a lone surrogate (U+D800-U+DFFF)", node.start_mark
            ) from None
    tag = str(node.tag)
    if tag == "tag:yaml.org,2002:timestamp":
        raise _refuse(f"{node.value!r} reads as a date: quote it if it is text", node.start_mark)
    if tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
        raise _refuse(
            f"a number of {len(node.value)} characters (at most {MAX_NUMBER_CHARS})",
            node.start_mark,
        )


def _check_key(key: Node) -> None:
    if not isinstance(key, ScalarNode):
        raise _refuse("mapping keys must be text, not a mapping or a list", key.start_mark)
    tag = str(key.tag)
    if tag == "tag:yaml.org,2002:merge":
        raise _refuse("merge keys (<<) are not accepted", key.start_mark)
    if tag != _STR_TAG:
        raise _refuse(f"mapping key {key.value!r} is not text: quote it", key.start_mark)


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` of ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def load_yaml(data: bytes, path: Path, *, error: type[InputError]) -> Any:
    """The one YAML document in ``data``: plain nested data with positions (module doc).

    Mappings come back as ``CommentedMap`` (their keys text), sequences as
    ``CommentedSeq``, scalars as str, int, float, bool or None; anything else, and any
    syntax error, raises ``error`` naming the file, line and column.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path} is not UTF-8 text (byte {exc.start})", Location(str(path), line)
        ) from exc
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line, column = _position(text, bad.start())
        raise error(
            f"non-printable character U+{ord(bad.group()):04X} (write it as an escape in a "
            "double-quoted string if it is meant)",
            Location(str(path), line, column),
        )
    yaml = YAML(typ="rt")
    yaml.Composer = _PlainDataComposer
    yaml.Scanner = _DepthLimitedScanner
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"invalid YAML: {problem}", loc) from exc
    except YAMLError as exc:
        raise error(f"invalid YAML: {exc}", Location(str(path))) from exc
    except AssertionError as exc:
        # ruamel.yaml's own consistency checks fail on some malformed documents (a block
        # scalar indicator after a comment, "a:\n  # c\n  |  # c\n"): invalid all the same
        raise error(
            "invalid YAML: ruamel.yaml cannot read this document", Location(str(path))
        ) from exc


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

    Every problem raises ``error`` naming the position: not UTF-8, invalid or refused
    YAML (``load_yaml``), not a mapping, or the first validation error (the others
    listed as details).
    """
    tree = load_yaml(data, path, error=error)
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
        if part == "[key]":
            continue  # pydantic's marker for an error in a mapping key, named by the part before
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
