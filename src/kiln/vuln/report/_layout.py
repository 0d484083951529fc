"""JSON text for large reports: indented, with long arrays written one item per line.

``json.dumps(indent=...)`` runs Python's pure-Python encoder (only unindented output has
a C encoder), which took most of a second for a few thousand findings. Here the outer
levels are indented by hand and each item of the named arrays is one compact C-encoded
line. The text parses to the same value as ``json.dumps(doc)``, keeps key order, and is
pure ASCII (``ensure_ascii``) like ``json.dumps``' default, so equal documents give
equal bytes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

# Default separators of unindented json.dumps: '"id": "CVE-..."' reads (and greps) the
# same as in an indented document.
_COMPACT = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": "))

ANY = "*"
"""A path step that matches every item of an array."""


def dumps_lines(doc: Any, one_per_line: Collection[tuple[str, ...]]) -> str:
    """``doc`` indented by two spaces, one item per line in the arrays at ``one_per_line``.

    A path is the keys (``ANY`` for array items) from the top to an array, e.g.
    ``("runs", ANY, "results")``. Ends with a newline.
    """
    return _dumps(doc, frozenset(one_per_line), (), "") + "\n"


def _dumps(value: Any, flat: frozenset[tuple[str, ...]], path: tuple[str, ...], pad: str) -> str:
    if isinstance(value, dict) and value:
        inner = pad + "  "
        members = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object key {key!r} at {'/'.join(path)} is not a string")
            members.append(f"{_COMPACT.encode(key)}: {_dumps(item, flat, (*path, key), inner)}")
        return "{\n" + inner + (",\n" + inner).join(members) + "\n" + pad + "}"
    if isinstance(value, list | tuple) and value:
        inner = pad + "  "
        if path in flat:
            items: Iterable[str] = map(_COMPACT.encode, value)
        else:
            items = (_dumps(item, flat, (*path, ANY), inner) for item in value)
        return "[\n" + inner + (",\n" + inner).join(items) + "\n" + pad + "]"
    return _COMPACT.encode(value)
