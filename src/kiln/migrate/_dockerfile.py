"""A Dockerfile as BuildKit reads it, with the exact position of every FROM image.

Instructions come from BuildKit's own parser (the ``dockerfile`` package wraps
``github.com/moby/buildkit/frontend/dockerfile/parser``), so line continuations, the
``escape`` parser directive, comments inside continuations, heredocs and
case-insensitive keywords mean what they mean to ``docker build``. The parser reports
line spans, not columns; this module finds the image token inside a FROM's lines itself
and checks it against the parser's reading, so that a rewrite replaces exactly that
token and leaves every other byte alone.
See https://docs.docker.com/reference/dockerfile/ (FROM, parser directives, heredocs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dockerfile as _buildkit  # type: ignore[import-not-found]  # compiled, no stubs

from kiln.errors import InputError, Location

_DIRECTIVE = re.compile(r"^#[ \t]*([A-Za-z_]+)[ \t]*=[ \t]*(\S*)[ \t]*$")
_TOKEN = re.compile(r"[^ \t]+")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), lines (1-based, inclusive) and words."""

    keyword: str
    start_line: int
    end_line: int
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json_form: bool
    sub_keyword: str | None = None  # ONBUILD's instruction


@dataclass(frozen=True)
class Span:
    """Where a token sits in the text: ``text[start:end]``, on a 1-based line and column."""

    start: int
    end: int
    line: int
    column: int


@dataclass(frozen=True)
class FromLine:
    """A FROM instruction: the image as written, where it is, the flags and stage name."""

    instruction: Instruction
    image: str
    stage_name: str | None
    span: Span | None  # None when the image token cannot be located exactly
    problem: str | None  # why the FROM is malformed, if it is

    @property
    def line(self) -> int:
        return self.instruction.start_line

    @property
    def flags_platform(self) -> str | None:
        """The ``--platform=...`` flag as written, if the FROM has one."""
        for flag in self.instruction.flags:
            if flag.lower().startswith("--platform"):
                return flag
        return None


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM and the instructions up to the next FROM."""

    index: int
    origin: FromLine
    body: tuple[Instruction, ...]


@dataclass(frozen=True)
class GlobalArg:
    """An ``ARG`` before the first FROM: its name, line and default value, if any."""

    name: str
    line: int
    default: str | None


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its exact text, global ARGs and stages in order."""

    path: str
    text: str
    escape: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]

    def global_arg(self, name: str) -> GlobalArg | None:
        """The global ``ARG name`` (before the first FROM) that ``${name}`` in a FROM reads."""
        found = None
        for arg in self.global_args:
            for word in arg.args:
                key, equals, value = word.partition("=")
                if key == name:  # a later ARG of the same name wins, as in BuildKit
                    found = GlobalArg(name, arg.start_line, value.strip("\"'") if equals else None)
        return found


def parse_dockerfile(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text; raise ``InputError`` naming ``path`` if BuildKit refuses it."""
    if "\x00" in text:
        # the Go parser reads a C string: a NUL would silently end the file there
        raise InputError(
            "contains a NUL byte: this is not a Dockerfile", Location(path, _line_of(text, "\x00"))
        )
    try:
        commands = _buildkit.parse_string(text)
    except _buildkit.GoParseError as exc:
        if "no instructions" in str(exc):
            raise InputError(
                "no FROM instruction: the file has no instructions at all",
                Location(path, 1),
                hint="kiln migrate rewrites the FROM lines of a Dockerfile",
            ) from exc
        raise InputError(f"BuildKit's parser refuses it: {exc}", Location(path)) from exc
    except UnicodeDecodeError as exc:
        # the binding returns invalid UTF-8 for some flags holding a 4-byte character
        # (COPY --\U0001b800from=...): no Dockerfile kiln can rewrite
        raise InputError(
            "BuildKit's parser (the dockerfile package) cannot read it: it splits a "
            "non-ASCII character inside an instruction's flag",
            Location(path),
        ) from exc
    instructions = tuple(_instruction(c) for c in commands)
    escape = _escape_directive(text)
    lines = text.split("\n")
    offsets = _line_offsets(lines)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    origin: FromLine | None = None
    body: list[Instruction] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            if origin is not None:
                stages.append(Stage(len(stages), origin, tuple(body)))
            origin = _from_line(ins, lines, offsets, escape)
            body = []
        elif origin is None:
            if ins.keyword == "ARG":
                global_args.append(ins)
        else:
            body.append(ins)
    if origin is None:
        raise InputError(
            "no FROM instruction: every Dockerfile stage starts with FROM",
            Location(path, 1),
            hint="kiln migrate rewrites the FROM lines of a Dockerfile",
        )
    stages.append(Stage(len(stages), origin, tuple(body)))
    return Dockerfile(path, text, escape, tuple(global_args), tuple(stages))


def _instruction(command: object) -> Instruction:
    cmd = getattr(command, "cmd", "")
    sub = getattr(command, "sub_cmd", None)
    return Instruction(
        keyword=str(cmd).upper(),
        start_line=int(getattr(command, "start_line", 0)),
        end_line=int(getattr(command, "end_line", 0)),
        flags=tuple(str(f) for f in getattr(command, "flags", ())),
        args=tuple(str(v) for v in getattr(command, "value", ())),
        json_form=bool(getattr(command, "json", False)),
        sub_keyword=str(sub).upper() if sub else None,
    )


def _line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def _line_offsets(lines: list[str]) -> list[int]:
    offsets, position = [], 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    return offsets


def _escape_directive(text: str) -> str:
    """The ``# escape=`` parser directive (default ``\\``); directives lead the file."""
    for raw in text.removeprefix(_BOM).split("\n"):
        match = _DIRECTIVE.match(raw.rstrip("\r").strip())
        if not match:
            break
        if match[1].lower() == "escape" and match[2] in ("\\", "`"):
            return match[2]
    return "\\"


def _from_line(ins: Instruction, lines: list[str], offsets: list[int], escape: str) -> FromLine:
    args = ins.args
    problem: str | None = None
    name: str | None = None
    if len(args) == 3 and args[1].upper() == "AS":
        name = args[2]
    elif len(args) != 1:
        problem = "FROM takes an image and an optional 'AS name', got " + (
            " ".join(repr(a) for a in args) if args else "nothing"
        )
    image = args[0] if args else ""
    span = _locate(ins, lines, offsets, escape, image) if image else None
    return FromLine(ins, image, name, span, problem)


def _locate(
    ins: Instruction, lines: list[str], offsets: list[int], escape: str, image: str
) -> Span | None:
    """Find the image token: the first word after the keyword and the flags.

    Words are read across the instruction's physical lines, skipping the continuation
    escape at a line's end and comment lines inside the continuation, as BuildKit does.
    Returns None when the token read here differs from BuildKit's (a word split across
    a continuation, say): then the line is not touched.
    """
    wanted = 1 + len(ins.flags)
    seen = 0
    for number in range(ins.start_line, ins.end_line + 1):
        line = lines[number - 1].removesuffix("\r")
        first = 0
        if number == 1 and line.startswith(_BOM):
            first = 1
        if number > ins.start_line and line.lstrip(" \t").startswith("#"):
            continue
        stripped = line.rstrip(" \t")
        body = stripped[:-1] if number < ins.end_line and stripped.endswith(escape) else line
        for match in _TOKEN.finditer(body, first):
            if seen == wanted:
                if match.group() != image:
                    return None
                start = offsets[number - 1] + match.start()
                return Span(start, start + len(image), number, match.start() + 1 - first)
            seen += 1
    return None
