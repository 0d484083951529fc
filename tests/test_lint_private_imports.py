"""tools/lint_private_imports.py finds another package's private names, and only those."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parents[1] / "tools" / "lint_private_imports.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_private_imports", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_private_names_of_other_packages_are_offences(tmp_path: Path) -> None:
    (tmp_path / "debian").mkdir()
    (tmp_path / "debian" / "client.py").write_text(
        "from kiln.debian._ar import Reader\nfrom kiln.debian.index import _table\n"
    )
    (tmp_path / "vuln").mkdir()
    (tmp_path / "vuln" / "feed.py").write_text(
        "from kiln.debian.client import _load_release, fetch_index\n"
        "import kiln.registry._client\n"
        "from kiln.errors import InputError\n"
        "from kiln.debian import __version__\n"
    )
    found = _tool().offences(tmp_path)
    assert found == [
        "src/kiln/vuln/feed.py:1: imports _load_release from kiln.debian.client",
        "src/kiln/vuln/feed.py:2: imports _client from kiln.registry._client",
    ]


def test_the_tree_has_none() -> None:
    assert _tool().offences() == []
