"""Text from outside (feeds, SBOMs, subprocess output) made safe to show on one line.

A hostile advisory title or a build log line must not move the cursor, retitle the
terminal or reorder what is shown: ``plain_line`` drops ECMA-48 escape sequences and
control characters and turns line breaks into spaces.
"""

from __future__ import annotations

import re

# ANSI/ECMA-48 escape sequences: CSI (ESC [ or 8-bit CSI), OSC/DCS/APC/PM strings up
# to their terminator, and two-byte ESC sequences.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P_^X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# C0, DEL and C1 controls go; whitespace controls become a space; bidirectional
# overrides and isolates go too, so text cannot be shown reordered ("Trojan Source").
_CONTROLS: dict[int, str | None] = {
    **dict.fromkeys((*range(0x20), 0x7F, *range(0x80, 0xA0))),
    **dict.fromkeys((0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85), " "),
    **dict.fromkeys((0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))),
}


def plain_line(text: str) -> str:
    """``text`` without control characters or terminal escape sequences, on one line."""
    if text.isprintable():  # nearly every cell: no copy, no regex
        return text
    return _ESCAPE.sub("", text).translate(_CONTROLS)
