"""The real Temporal dev server fixture of the factory's tests, shared here, and a
``$KILN_CACHE`` of a test's own."""

from pathlib import Path

import pytest

from factory.conftest import temporal
from kiln.debian.cache import default_cache_root

__all__ = ["own_cache", "temporal"]


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$KILN_CACHE`` of this test: the shared verified .debs and indexes linked in, its
    own layouts, layers and remembered outcomes."""
    shared, cache = default_cache_root(), tmp_path / "cache"
    cache.mkdir()
    for part in ("sha256", "derived", "meta"):
        if (shared / part).is_dir():
            (cache / part).symlink_to(shared / part)
    monkeypatch.setenv("KILN_CACHE", str(cache))
    return cache
