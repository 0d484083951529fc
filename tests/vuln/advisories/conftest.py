"""Fixtures for the advisory store tests: a fresh SQLite store, and PostgreSQL's fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.vuln.advisories import AdvisoryStore

# A throwaway PostgreSQL cluster (or $KILN_TEST_POSTGRES), as the database tests use it.
from ..test_db import postgres_url  # noqa: F401


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kiln.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[AdvisoryStore]:
    opened = AdvisoryStore.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
