"""The real vex step (``CatalogSteps.vex``) on the real archive, for the catalog's base.

Today's archive has no CVE of the catalog whose unstable fix touches only a program an
image lacks (docs/factory.md, "The real case for remedy (c)"), so this checks the real
path end to end where it must say nothing: lz4's CVE-2025-62813, whose unstable patch
changes ``lib/lz4frame.c``. Everything is read for real: unstable's patch through the
signed indexes, base's locked .debs and lz4's binaries (sha256-checked), lz4's trixie
source unpacked by dpkg-source in the sandbox.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.factory.catalog import CatalogSteps
from kiln.factory.model import Observation, ReconcileRequest
from kiln.pipeline.backport import find_unstable_fix

from .fakesteps import catalog_repo


def base_files() -> dict[str, bytes]:
    """The catalog's base spec and lock, as the factory's checkout carries them."""
    return {
        f"images/base{suffix}": (CATALOG_DIR / f"base{suffix}").read_bytes()
        for suffix in (".yaml", ".lock.json")
    }


CVE = "CVE-2025-62813"


@pytest.mark.network
def test_the_real_vex_step_makes_no_statement_for_lz4s_library_fix(tmp_path: Path) -> None:
    fix = find_unstable_fix("lz4", CVE)
    if fix is None or not fix.patches:
        pytest.skip(f"the archive moved: unstable no longer carries a patch for {CVE}")
    repo = catalog_repo(tmp_path / "catalog", base_files())
    steps = CatalogSteps(repo)
    seen = Observation("base", "a" * 64, behind=False, unstable_cves=[f"lz4 {CVE}"])
    notes: list[str] = []
    result = steps.vex(ReconcileRequest("base"), seen, notes.append)
    assert result.outcome == "nothing"
    assert result.proposal is None
    # both justifications were tried, and each says why it does not hold
    assert (
        f"{CVE} (lz4): no component_not_present: lib/lz4frame.c: no binary of the source "
        "ships a program 'lz4frame'"
    ) in result.reason
    assert "lib/lz4frame.c @@ " in result.reason
    assert "the source has a file named 'lz4frame.c' (rule 2)" in result.reason
    assert "reading the image's file lists" in notes
    # lz4's trixie source was unpacked in the factory's work directory, nowhere else
    work = repo / ".kiln" / "factory" / "work"
    assert (work / f"base-{'a' * 16}-vex" / "lz4").is_dir()
    assert subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, check=True, text=True,
    ).stdout == ""  # fmt: skip
