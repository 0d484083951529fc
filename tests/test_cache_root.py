"""kiln's cache root has one resolver: every path under it agrees, whatever $KILN_CACHE says."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.debian.cache import default_cache_root
from kiln.vuln.db import default_db_url


@pytest.mark.parametrize(
    ("environ", "root"),
    [
        ({"HOME": "/home/u"}, "/home/u/.cache/kiln"),
        ({"HOME": "/home/u", "KILN_CACHE": ""}, "/home/u/.cache/kiln"),  # set but empty
        ({"HOME": "/home/u", "KILN_CACHE": "/srv/kiln"}, "/srv/kiln"),
    ],
)
def test_the_vulnerability_database_lives_in_the_cache_root(
    environ: dict[str, str], root: str
) -> None:
    assert default_cache_root(environ) == Path(root)
    assert default_db_url(environ) == f"sqlite:///{root}/vuln.db"


def test_a_tilde_in_kiln_cache_is_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    environ = {"HOME": "/home/u", "KILN_CACHE": "~/kiln-cache"}
    assert default_cache_root(environ) == Path("/home/u/kiln-cache")
    assert default_db_url(environ) == "sqlite:////home/u/kiln-cache/vuln.db"


def test_kiln_db_overrides_the_cache_root(tmp_path: Path) -> None:
    environ = {"KILN_CACHE": "", "KILN_DB": str(tmp_path / "v.db")}
    assert default_db_url(environ) == f"sqlite:///{tmp_path / 'v.db'}"
