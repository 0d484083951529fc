"""Bounded parsing of JSON that comes from outside: size and nesting depth limits first.

Python's ``json`` module recurses once per nested array or object, so a document that
nests a few thousand levels (a few kilobytes) raises ``RecursionError``, and one that
nests a few hundred parses but breaks whatever walks or re-serialises it later. Every
JSON document kiln reads from a registry, a file, a feed or an archive goes through
``parse_json`` (or ``read_json_file``), which refuses, with the caller's error type and
the document's name:

- more than ``max_bytes`` bytes (checked before anything is decoded);
- nesting deeper than ``max_depth`` arrays/objects (checked before ``json.loads``, in a
  few C-speed passes over the brackets outside strings, ~1 s for 80 MB);
- anything that is not strict RFC 8259 JSON: syntax errors (with line and column),
  ``NaN``/``Infinity``, integers too long for Python to convert.

Spec: https://www.rfc-editor.org/rfc/rfc8259 (section 9 lets parsers limit depth and size).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from kiln.errors import InputError, KilnError, Location

# Deep enough for every format kiln reads (nested CycloneDX components, SPDX, in-toto
# predicates nest tens of levels at most), far below Python's recursion limit (1000),
# which json.dumps, pydantic and kiln's own walkers share with the caller's frames.
MAX_DEPTH = 128

_PAIR = re.compile(rb"\[\]|\{\}")
# every byte except the four brackets and the quote
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')


def nesting_exceeds(data: bytes, max_depth: int) -> bool:
    """Whether UTF-8 JSON ``data`` nests arrays/objects deeper than ``max_depth``.

    Brackets inside strings do not count. Exact for well-formed JSON; for malformed
    input it may answer False and leave the syntax error to the parser.
    """
    # Escapes first (``\\`` before ``\"``, left to right as JSON reads them), so every
    # remaining quote delimits a string; then keep only quotes and brackets.
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    # Adjacent quotes are an empty string or the boundary between two strings: either
    # way dropping them leaves every bracket as inside or outside a string as it was.
    structure = structure.replace(b'""', b"")
    if b'"' in structure:  # strings that hold brackets: rare, split them off
        structure = b"".join(structure.split(b'"')[::2])
    # each pass removes the innermost level of pairs
    for _ in range(max_depth):
        if not structure:
            return False
        reduced = _PAIR.sub(b"", structure)
        if reduced == structure:
            return False  # unbalanced: the parser reports the syntax error
        structure = reduced
    return _PAIR.search(structure) is not None


def stream_nesting_exceeds(handle: BinaryIO, max_depth: int, *, chunk: int = 1 << 20) -> bool:
    """``nesting_exceeds`` for a stream read in chunks, before a streaming parser sees it.

    Streaming parsers (ijson) build a path prefix per event, so nesting N levels costs
    O(N^2) memory there: 100,000 levels (200 KB) took more than the machine's memory.
    Exact up to a factor of two near the limit: within a chunk the depth is bounded
    from above by the chunk's unmatched opening brackets plus its own pair nesting.
    """
    depth = 0
    in_string = False
    carry = b""
    while True:
        block = handle.read(chunk)
        data = carry + block
        if block:  # hold back a trailing run of backslashes: its escapes end in the next block
            cut = len(data.rstrip(b"\\"))
            data, carry = data[:cut], data[cut:]
        structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
        if in_string:  # the string open at the end of the last block closes first
            quote = structure.find(b'"')
            if quote < 0:
                structure = b""
            else:
                structure, in_string = structure[quote + 1 :], False
        parts = structure.replace(b'""', b"").split(b'"')
        in_string = len(parts) % 2 == 0
        outside = b"".join(parts[::2])
        passes = 0
        while True:
            reduced = _PAIR.sub(b"", outside)
            if reduced == outside:
                break
            outside, passes = reduced, passes + 1
            if depth + passes > max_depth:
                return True
        opens = len(outside.lstrip(b"]}"))
        if depth + opens + passes > max_depth:
            return True
        depth += opens - (len(outside) - opens)
        if not block:
            return False


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _fail(
    error: type[KilnError],
    what: str,
    where: str,
    message: str,
    exc: BaseException | None = None,
    *,
    file: bool = False,
) -> NoReturn:
    location = Location(where)
    if isinstance(exc, json.JSONDecodeError):
        if file:  # a file: its position in the file:line:col form editors jump to
            location = Location(where, exc.lineno, exc.colno)
        else:
            message += f" at line {exc.lineno} column {exc.colno}"
    raise error(f"{what} {message}", location=location) from exc


def parse_json(
    data: bytes | str,
    *,
    where: str,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    what: str = "the JSON document",
    error: type[KilnError] = InputError,
    file: bool = False,
) -> Any:
    """The value of JSON ``data``, or ``error`` naming ``where`` and the broken limit.

    ``where`` names the source (a path, or ``registry R: repo@digest``); ``what`` says
    what the document should have been ("the manifest", "the Sigstore bundle"). With
    ``file`` (``where`` is a path) a syntax error is located as ``path:line:col``.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        _fail(error, what, where, f"is {len(raw)} bytes, larger than the limit of {max_bytes}")
    if nesting_exceeds(raw, max_depth):
        _fail(error, what, where, f"nests arrays/objects deeper than {max_depth} levels")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        _fail(error, what, where, f"is not JSON: {exc.msg}", exc, file=file)
    except UnicodeDecodeError as exc:
        _fail(error, what, where, f"is not UTF-8 JSON: {exc.reason} at byte {exc.start}", exc)
    except (ValueError, RecursionError) as exc:
        # NaN/Infinity, an integer over Python's 4300-digit limit, or (UTF-16/32
        # input, whose brackets the byte scan cannot see) nesting past the stack
        _fail(error, what, where, f"is not acceptable JSON: {exc}", exc)


def read_json_file(
    path: Path,
    *,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    what: str = "the JSON document",
    error: type[KilnError] = InputError,
    where: str | None = None,
) -> Any:
    """``parse_json`` of a file, refusing an oversized one before reading it whole."""
    name = where or str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", location=Location(name)) from exc
    if len(data) > max_bytes:
        _fail(error, what, name, f"is larger than the limit of {max_bytes} bytes")
    return parse_json(
        data,
        where=name,
        max_bytes=max_bytes,
        max_depth=max_depth,
        what=what,
        error=error,
        file=where is None,
    )
