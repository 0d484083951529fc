"""The parallel gzip writer: standard gzip, identical bytes for any thread count."""

from __future__ import annotations

import gzip
import io
import random
import shutil
import subprocess
import zlib

import pytest

from kiln.assemble.pargzip import CHUNK, ParallelGzipWriter


def _data(size: int, seed: int = 7) -> bytes:
    """Compressible but not trivial: words from a small vocabulary plus random bytes."""
    rng = random.Random(seed)
    words = [bytes(rng.randrange(97, 123) for _ in range(rng.randrange(2, 9))) for _ in range(500)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
        if rng.random() < 0.01:
            out += rng.randbytes(64)
    return bytes(out[:size])


def _gzip(data: bytes, workers: int, writes: int = 7919) -> bytes:
    sink = io.BytesIO()
    writer = ParallelGzipWriter(sink, level=6, workers=workers)
    for start in range(0, len(data), writes):  # odd write sizes straddle chunk borders
        writer.write(data[start : start + writes])
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345])
def test_round_trips_through_gzip(size: int) -> None:
    data = _data(size)
    assert gzip.decompress(_gzip(data, workers=2)) == data


def test_bytes_do_not_depend_on_the_number_of_threads() -> None:
    data = _data(5 * CHUNK + 99)
    one = _gzip(data, workers=1)
    assert _gzip(data, workers=2) == one
    assert _gzip(data, workers=8, writes=CHUNK // 3) == one


def test_header_is_gzipfile_header_and_size_is_close_to_it() -> None:
    data = _data(4 * CHUNK)
    ours = _gzip(data, workers=2)
    sink = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=6, mtime=0) as ref:
        ref.write(data)
    theirs = sink.getvalue()
    assert ours[:10] == theirs[:10]  # magic, deflate, no flags, mtime 0, xfl, OS
    assert ours[-8:] == theirs[-8:]  # CRC-32 and size
    assert len(ours) <= len(theirs) * 1.01  # the primed dictionary keeps the ratio


@pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip(1) is not installed")
def test_gnu_gzip_accepts_it() -> None:
    data = _data(2 * CHUNK + 5)
    blob = _gzip(data, workers=2)
    assert subprocess.run(["gzip", "-t"], input=blob, check=False).returncode == 0
    out = subprocess.run(["gzip", "-dc"], input=blob, capture_output=True, check=True).stdout
    assert out == data


def test_a_single_member_with_one_final_block() -> None:
    data = _data(2 * CHUNK)
    blob = _gzip(data, workers=2)
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(blob[10:-8]) == data
    assert inflater.eof
    assert inflater.unused_data == b""


def test_write_after_close_is_refused() -> None:
    writer = ParallelGzipWriter(io.BytesIO(), workers=1)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x")
