"""The layer cache: a layer whose tar was compressed before is linked, not compressed
again, and is byte for byte what a fresh write gives; a damaged entry is rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from assemble.helpers import EPOCH
from kiln.assemble.fs import Entry, Plan, dir_entry, file_entry
from kiln.assemble.layercache import LayerCache
from kiln.assemble.layers import Compression, write_layer


def _entries(text: bytes = b"libc") -> list[Entry]:
    plan = Plan.empty().with_entries(
        dir_entry("usr/lib", mode=0o755),
        file_entry("usr/lib/libc.so.6", text * 5000, mode=0o644),
    )
    return list(plan.sorted())


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_the_second_write_reuses_the_blob_and_equals_a_fresh_write(
    tmp_path: Path, compression: Compression
) -> None:
    cache = LayerCache(tmp_path / "layers")
    entries = _entries()
    first = cache.write(entries, tmp_path / "a", epoch=EPOCH, compression=compression)
    second = cache.write(entries, tmp_path / "b", epoch=EPOCH, compression=compression)
    fresh = write_layer(entries, tmp_path / "c", epoch=EPOCH, compression=compression)
    assert (first.reused, second.reused) == (False, True)
    for layer in (first, second):
        assert (layer.digest, layer.size, layer.diff_id) == (
            fresh.digest,
            fresh.size,
            fresh.diff_id,
        )
        assert (layer.entries, layer.uncompressed_size) == (fresh.entries, fresh.uncompressed_size)
        assert layer.path.read_bytes() == fresh.path.read_bytes()
    assert second.path == tmp_path / "b" / "sha256" / fresh.digest.split(":", 1)[1]


def test_other_content_or_epoch_is_another_entry(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "layers")
    cache.write(_entries(), tmp_path / "a", epoch=EPOCH)
    other = cache.write(_entries(b"libz"), tmp_path / "b", epoch=EPOCH)
    later = cache.write(_entries(), tmp_path / "c", epoch=EPOCH + 1)
    assert not other.reused
    assert not later.reused
    assert len([p for p in (tmp_path / "layers").iterdir() if not p.name.startswith(".")]) == 3


def test_a_damaged_cached_blob_is_rebuilt_not_shipped(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "layers")
    first = cache.write(_entries(), tmp_path / "a", epoch=EPOCH)
    (entry,) = (p for p in (tmp_path / "layers").iterdir() if not p.name.startswith("."))
    blob = entry / "blob"
    blob.unlink()  # it was a hard link to the layout's blob: corrupt a copy, not the layout
    data = bytearray(first.path.read_bytes())
    data[-5] ^= 0xFF
    blob.write_bytes(bytes(data))
    again = cache.write(_entries(), tmp_path / "b", epoch=EPOCH)
    assert not again.reused
    assert again.path.read_bytes() == first.path.read_bytes()
    (entry / "layer.json").write_text("{not json")
    assert not cache.write(_entries(), tmp_path / "c", epoch=EPOCH).reused


def test_concurrent_builds_of_one_new_layer_compress_it_once(tmp_path: Path) -> None:
    """Whatever the interleaving, one build compresses and the others wait and reuse."""
    from concurrent.futures import ThreadPoolExecutor

    cache = LayerCache(tmp_path / "layers")
    entries = _entries(b"zlib" * 50)
    with ThreadPoolExecutor(max_workers=4) as pool:
        layers = list(
            pool.map(lambda n: cache.write(entries, tmp_path / f"out{n}", epoch=EPOCH), range(4))
        )
    assert sorted(layer.reused for layer in layers) == [False, True, True, True]
    assert len({layer.digest for layer in layers}) == 1
