"""Upstream discovery on the real archive: trixie's packaging of jq, libarchive and
python-urllib3 (signed Sources, the ``.debian.tar`` only) names their real upstream
repositories, which resolve to fixbench's bare clones through ``KILN_RESEARCH_MIRRORS``.
Without a mirror the clone of each URL is tried for real (GitHub is not reachable from
this machine, so there the error path runs). About 3 s per package.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.research.discover import (
    discover,
    fetch_packaging,
    has_upstream_history,
    open_upstream,
)
from research.conftest import FIXBENCH

CASES = [  # source, upstream URL, fixbench clone, upstream's tag of trixie's version
    ("jq", "https://github.com/jqlang/jq.git", "jq.git", "jq-1.7.1"),
    ("libarchive", "https://github.com/libarchive/libarchive.git", "libarchive.git", "v3.7.4"),
    ("python-urllib3", "https://github.com/urllib3/urllib3.git", "urllib3.git", "2.3.0"),
]


def _repos() -> Path:
    repos = FIXBENCH / "repos"
    if not repos.is_dir():
        pytest.skip("fixbench is not here")
    return repos


@pytest.mark.network
@pytest.mark.parametrize(("source", "url", "clone", "tag"), CASES)
def test_discovery_finds_the_upstream_and_its_mirror(
    source: str, url: str, clone: str, tag: str
) -> None:
    repos = _repos()
    found = discover(fetch_packaging(source))
    assert found.candidates[0].url == url
    assert "debian/upstream/metadata Repository" in found.candidates[0].origins
    assert found.candidates[-1].packaging  # Vcs-Git (salsa) comes last
    assert found.candidates[-1].url.startswith("https://salsa.debian.org/")
    with open_upstream(found, mirrors=[repos]) as (git, used):
        assert used.candidate.url == url
        assert used.location == str(repos / clone)
        assert used.tried == ()
        # the rule that admits a Vcs-Git repository accepts each real upstream
        version = found.packaging.upstream_version
        found_tag = has_upstream_history(git, version)
        assert found_tag == tag if tag.endswith(version) else found_tag is not None


@pytest.mark.network
def test_cli_discovers_prints_and_ranks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repos = _repos()
    monkeypatch.setenv("KILN_RESEARCH_MIRRORS", f"/nonexistent:{repos}")
    code = main(
        ["research", "CVE-2025-49014", "--package", "jq", "--top", "1",
         "--description", "jq: heap use after free in f_strftime and f_strflocaltime",
         "--published", "2025-06-19"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "candidate: https://github.com/jqlang/jq.git (from debian/upstream/metadata" in out.err
    assert f"using https://github.com/jqlang/jq.git from {repos / 'jq.git'}" in out.err
    assert "499c91bca9d4" in out.out  # the fix, ranked first
    code = main(
        ["research", "CVE-2025-49014", "--package", "jq", "--top", "1", "--json",
         "--description", "jq: heap use after free in f_strftime and f_strflocaltime",
         "--published", "2025-06-19"]
    )  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["upstream"]["url"] == "https://github.com/jqlang/jq.git"
    assert data["upstream"]["location"] == str(repos / "jq.git")
    assert [c["url"] for c in data["upstream"]["candidates"]] == [
        "https://github.com/jqlang/jq.git",
        "https://salsa.debian.org/debian/jq.git",
    ]
    assert data["kiln"][0]["commit"].startswith("499c91bca9d4")


@pytest.mark.network
def test_cli_lists_the_candidates_when_none_opens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No mirror: each URL is cloned for real; none is reachable here (exit 3, listed)."""
    monkeypatch.delenv("KILN_RESEARCH_MIRRORS", raising=False)
    probe = subprocess.run(
        ["git", "ls-remote", "https://github.com/jqlang/jq.git", "HEAD"],
        capture_output=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, timeout=60,
        check=False,
    )  # fmt: skip
    if probe.returncode == 0:
        pytest.skip("this machine reaches GitHub: the error path does not run here")
    code = main(
        ["research", "CVE-2025-49014", "--package", "jq", "--description", "x",
         "--published", "2025-06-19"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3
    assert "no upstream repository of jq could be opened (2 candidates)" in err
    assert "https://github.com/jqlang/jq.git: cannot clone" in err
    assert "https://salsa.debian.org/debian/jq.git: cannot clone" in err
    assert "KILN_RESEARCH_MIRRORS" in err
