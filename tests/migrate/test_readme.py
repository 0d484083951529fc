"""The README's migration example and compatibility table match the real catalog."""

from __future__ import annotations

import re
from pathlib import Path

from kiln.migrate import (
    README_BEGIN,
    README_END,
    catalog_from_specs,
    explain,
    load_catalog,
    migrate,
    notes_markdown,
    spec_paths,
    unified_diff,
)
from kiln.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
IMAGES = ROOT / "images"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Migrating a Dockerfile\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(section: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"```(\w*)\n(.*?)```\n", section, re.DOTALL)}


def test_the_notes_table_is_generated_from_the_specs() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(README_BEGIN) + len(README_BEGIN) + 1 : text.index(README_END)]
    specs = [load_spec(p) for p in spec_paths(IMAGES)]
    expected = notes_markdown(catalog_from_specs(specs, with_locks=False).images)
    assert block == expected, (
        "README.md's compatibility table is stale: run "
        "`kiln spec notes --markdown --readme README.md`"
    )


def test_the_example_is_what_kiln_migrate_prints() -> None:
    blocks = _blocks(_section())
    catalog = load_catalog(IMAGES)
    result = migrate(blocks["dockerfile"], catalog, "registry.example/kiln", path="Dockerfile")
    assert unified_diff(result) == blocks["diff"], "README.md's migrate example is stale"
    said = list(explain(result, catalog))
    shown = blocks[""].splitlines()
    assert shown == said[: len(shown)]
    assert result.complete
