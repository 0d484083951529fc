"""The top candidate as a quilt patch: DEP-3 headers kiln accepts, applies with patch -p1."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from kiln.errors import Location, PolicyError
from kiln.recipes.dep3 import parse_dep3
from kiln.research.gitrepo import open_repo
from kiln.research.patch import commit_diff, commit_url, dep3_headers, render_patch
from kiln.research.record import record_from_json
from research.conftest import Upstream, record_json


def test_patch_has_dep3_headers_and_applies_to_the_old_release(
    upstream: Upstream, tmp_path: Path
) -> None:
    record = record_from_json(record_json(), Location("t")).record
    with open_repo(upstream.work) as repo:
        (commit,) = repo.log([upstream.fix, "-1"])
        headers = dep3_headers(
            record, commit, repo_url="https://example.org/demo/upstream.git",
            today=dt.date(2026, 1, 2),
        )  # fmt: skip
        patch = render_patch(headers, commit_diff(repo, commit))
        tree = tmp_path / "tree"
        with tarfile.open(fileobj=io.BytesIO(repo.run(["archive", "--format=tar", "v1.0"]))) as t:
            t.extractall(tree, filter="data")
    header = parse_dep3(patch.decode(), path="fix.patch")
    assert header.cves == ("CVE-2023-0001",)
    assert header.origin == f"upstream, https://example.org/demo/upstream/commit/{upstream.fix}"
    assert header.forwarded == "not-needed"
    assert header.bugs == ("https://example.org/demo/upstream/issues/42",)
    assert dict(header.fields)["Last-Update"] == "2026-01-02"
    (tmp_path / "fix.patch").write_bytes(patch)
    subprocess.run(
        ["patch", "-p1", "--batch", "-i", str(tmp_path / "fix.patch")],
        cwd=tree, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert "if (len > 16)" in (tree / "src/parse.c").read_text()


def test_a_commit_with_binary_files_is_refused(upstream: Upstream) -> None:
    with open_repo(upstream.work) as repo:
        (commit,) = repo.log([upstream.binary, "-1"])
        with pytest.raises(PolicyError, match="binary file"):
            commit_diff(repo, commit)


def test_commit_url_only_for_web_repositories() -> None:
    assert commit_url("https://github.com/o/r.git", "ab") == "https://github.com/o/r/commit/ab"
    assert commit_url("/srv/r.git", "ab") == "commit:ab"
    assert commit_url(None, "ab") == "commit:ab"
