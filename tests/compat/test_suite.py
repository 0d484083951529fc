"""The real suite (network): the six apps of compat/ build and run on the stand-ins and on
kiln's images with identical responses. Runs with `make test`; `make compat` prints the
same table. Stand-ins and unchanged app builds are cached in $KILN_CACHE/compat.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from kiln.compat import SuiteConfig, load_apps, load_standins, render, run_suite, to_json
from kiln.debian.cache import default_cache_root
from kiln.debian.sources import discover_mirrors
from kiln.migrate import load_catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.network
def test_every_app_runs_the_same_on_kiln_images_as_on_the_official_stand_ins() -> None:
    work = default_cache_root() / "compat"
    config = SuiteConfig(work=work, images_dir=ROOT / "images")
    result = run_suite(
        load_apps(ROOT / "compat"),
        load_standins(ROOT / "compat" / "standins.yaml"),
        load_catalog(ROOT / "images"),
        discover_mirrors(),
        config,
    )
    console = Console(width=160, record=True, color_system=None)
    console.print(render(result))
    (work / "last-report.json").write_text(to_json(result), encoding="utf-8")
    assert result.ok, console.export_text()
    shipped = sorted(d.name for d in (ROOT / "compat").iterdir() if (d / "compat.yaml").is_file())
    assert sorted(app.name for app in result.apps) == shipped  # every app ran, none skipped
    for app in result.apps:
        before, after = app.before, app.after
        assert before.size is not None
        assert after.size is not None
