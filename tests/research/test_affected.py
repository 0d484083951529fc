"""Affected or not, on real history: jq 1.7.1 (trixie's) and CVE-2025-49014's fix."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.research.affected import decide, parse_hunks
from kiln.research.gitrepo import open_repo
from research.conftest import FIXBENCH, Upstream

JQ_FIX_49014 = "499c91bca9d4d027833bc62787d1bb075c03680e"

needs_fixbench = pytest.mark.skipif(
    not (FIXBENCH / "repos" / "jq.git").exists(), reason="fixbench is not here"
)


def _tree_at(repo_path: Path, rev: str, dest: Path) -> Path:
    with open_repo(repo_path) as repo:
        data = repo.run(["archive", "--format=tar", rev])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def test_the_fixed_release_is_affected_before_and_not_after(
    upstream: Upstream, tmp_path: Path
) -> None:
    with open_repo(upstream.work) as repo:
        diff = repo.show(upstream.fix)
    before = decide(diff, _tree_at(upstream.work, "v1.0", tmp_path / "v1.0"))
    assert before.status == "affected"
    after = decide(diff, _tree_at(upstream.work, "v1.1", tmp_path / "v1.1"))
    assert after.status == "not_affected"
    assert after.justification == "vulnerable_code_not_present"
    assert after.as_json()["without_counterpart"] == [f"src/parse.c {after.hunks[0].hunk.header}"]


@needs_fixbench
def test_jq_1_7_1_lacks_the_code_cve_2025_49014_fixes(tmp_path: Path) -> None:
    repo = FIXBENCH / "repos" / "jq.git"
    with open_repo(repo) as git:
        diff = git.show(JQ_FIX_49014)
    stable = decide(diff, _tree_at(repo, "jq-1.7.1", tmp_path / "stable"))
    assert stable.status == "not_affected"
    assert stable.justification == "vulnerable_code_not_present"
    assert {h.hunk.path for h in stable.hunks if not h.present} >= {"src/builtin.c"}
    # the release the fix was made against does carry it
    with open_repo(repo) as git:
        parent = git.run(["rev-parse", f"{JQ_FIX_49014}^"]).decode().strip()
    assert decide(diff, _tree_at(repo, parent, tmp_path / "parent")).status == "affected"


def test_diff_paths_outside_the_tree_are_refused() -> None:
    evil = "--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(InputError, match="unsafe path"):
        parse_hunks(evil)


def test_a_diff_without_text_hunks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no text hunks"):
        decide("Binary files a/x.png and b/x.png differ\n", tmp_path)


def test_a_missing_tree_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    with open_repo(upstream.work) as repo:
        diff = repo.show(upstream.fix)
    with pytest.raises(InputError, match="not a source tree"):
        decide(diff, tmp_path / "nope")


@pytest.mark.network
@pytest.mark.slow
def test_trixie_jq_source_from_the_archive_is_not_affected_by_cve_2025_49014(
    tmp_path: Path,
) -> None:
    """The real case: trixie's jq source through kiln's signed source fetch."""
    if not (FIXBENCH / "repos" / "jq.git").exists():
        pytest.skip("fixbench is not here")
    from kiln.debian import get_distro
    from kiln.pipeline.source import SourceBuilder

    fetched, _ = SourceBuilder.from_environment().fetch(get_distro("debian-13"), "jq")
    tree = tmp_path / "jq"
    subprocess.run(
        ["dpkg-source", "--no-check", "-x", str(fetched.dsc), str(tree)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with open_repo(FIXBENCH / "repos" / "jq.git") as git:
        diff = git.show(JQ_FIX_49014)
    verdict = decide(diff, tree)
    assert verdict.status == "not_affected", verdict.as_json()
