"""A binary stream wrapper that counts bytes consumed, so parse errors can say where."""

from __future__ import annotations

from typing import BinaryIO


class CountingReader:
    """Wraps a binary stream; ``offset`` is how many bytes the parser has pulled so far."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.offset = 0
        self._head = b""

    def peek_first_byte(self) -> bytes:
        """The first non-whitespace byte (kept for the next ``read``), or b"" if empty."""
        while True:
            chunk = self._raw.read(4096)
            self._head += chunk
            stripped = self._head.lstrip()
            if stripped or not chunk:
                return stripped[:1]

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            if size < 0:
                data += self._raw.read()
            elif len(data) > size:
                data, self._head = data[:size], data[size:]
        else:
            data = self._raw.read(size)
        self.offset += len(data)
        return data
