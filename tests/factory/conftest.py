"""A real Temporal dev server per test (the pinned CLI, headless, free ports, SQLite in tmp)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.errors import EnvironmentProblem
from kiln.factory.server import Endpoint, start_dev_server, stop_server, temporal_binary


@pytest.fixture
def temporal(tmp_path: Path) -> Iterator[Endpoint]:
    """A fresh dev server for one test (it starts in well under a second)."""
    try:
        binary = temporal_binary()
    except EnvironmentProblem:
        pytest.skip("the Temporal CLI is not installed (make venv)")
    endpoint = start_dev_server(tmp_path / "temporal", ui=False, binary=binary)
    assert endpoint.pid is not None
    try:
        yield endpoint
    finally:
        stop_server(endpoint.pid)
