"""The local dev server kiln starts, reuses, and replaces when its record is garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import EnvironmentProblem, InputError
from kiln.factory.server import endpoint_for, parse_address, stop_server, temporal_binary


@pytest.fixture
def binary() -> Path:
    try:
        return temporal_binary()
    except EnvironmentProblem:
        pytest.skip("the Temporal CLI is not installed (make venv)")


def test_started_once_then_reused_and_a_garbage_record_replaced(
    tmp_path: Path, binary: Path
) -> None:
    del binary
    first = endpoint_for(tmp_path, {})
    assert first.pid is not None
    try:
        assert first.ui is not None  # the operator's view
        assert (tmp_path / ".kiln" / ".gitignore").read_text() == "*\n"
        assert endpoint_for(tmp_path, {}) == first  # reused
    finally:
        stop_server(first.pid)
    record = tmp_path / ".kiln" / "temporal" / "server.json"
    record.write_text('{"pid": "not a number", "address": [1, 2]')
    second = endpoint_for(tmp_path, {})
    assert second.pid is not None
    try:
        assert second.pid != first.pid
        assert json.loads(record.read_text())["address"] == second.address
    finally:
        stop_server(second.pid)


def test_kiln_temporal_names_the_cluster_and_is_checked(tmp_path: Path) -> None:
    assert endpoint_for(tmp_path, {"KILN_TEMPORAL": "temporal.internal:7233"}).pid is None
    assert not (tmp_path / ".kiln").exists()  # nothing started, nothing written
    for bad in ("garbage", "host:", ":7233", "host:99999", "host:port"):
        with pytest.raises(InputError, match="expected host:port"):
            parse_address(bad)
