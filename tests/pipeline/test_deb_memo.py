"""The process-wide memo of read .debs (``kiln.pipeline.build._read_debs``): a .deb read
once is not decompressed again by the next variant or image; a replaced file is read
again; the memo stays within its byte limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, build_deb
from kiln.pipeline import build


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> build._DebMemo:
    fresh = build._DebMemo(1 << 20)
    monkeypatch.setattr(build, "_DEBS", fresh)
    return fresh


def _deb(tmp_path: Path, name: str, size: int) -> Path:
    spec = DebSpec(name=name, version="1.0-1", files={f"usr/share/{name}/data": os.urandom(size)})
    return build_deb(spec, tmp_path / f"{name}_1.0-1_amd64.deb")


def test_a_deb_read_once_is_shared_and_a_replaced_one_is_read_again(
    tmp_path: Path, memo: build._DebMemo
) -> None:
    first = _deb(tmp_path, "alpha", 1000)
    one = build._read_debs([first])[first]
    assert build._read_debs([first])[first] is one  # the same object: not read again

    (tmp_path / "new").mkdir()
    replacement = _deb(tmp_path / "new", "alpha", 2000)
    os.replace(replacement, first)  # the cache replaces files by rename only
    again = build._read_debs([first])[first]
    assert again is not one
    assert len(again.contents["usr/share/alpha/data"]) == 2000


def test_the_memo_evicts_the_least_recently_used_beyond_its_limit(
    tmp_path: Path, memo: build._DebMemo
) -> None:
    debs = [_deb(tmp_path, name, 200_000) for name in ("pa", "pb", "pc", "pd", "pe", "pf")]
    read = {}
    for deb in debs:  # one at a time: the order of use is the order here
        read.update(build._read_debs([deb]))
    assert memo._bytes <= memo.limit
    assert memo.get(debs[0]) is None  # the oldest went
    assert memo.get(debs[-1]) is read[debs[-1]]
    huge = _deb(tmp_path, "huge", 400_000)  # over a quarter of the limit: never kept
    build._read_debs([huge])
    assert memo.get(huge) is None
