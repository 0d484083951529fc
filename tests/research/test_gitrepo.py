"""The git edge: bare clones without refs/, bounds on output, size and time, bad paths."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kiln.errors import InputError, RemoteContentError
from kiln.research.gitrepo import GitError, open_repo
from research.conftest import Upstream, git


def _bare_without_refs(upstream: Upstream, root: Path) -> Path:
    """A bare clone laid out like fixbench's: packed refs, no refs/ folder, read-only."""
    bare = root / "bare.git"
    git(root, "clone", "-q", "--bare", str(upstream.work), str(bare))
    git(bare, "pack-refs", "--all")
    shutil.rmtree(bare / "refs")
    for path in [bare, *bare.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return bare


def test_a_bare_clone_without_refs_is_read_through_a_scratch_dir(
    upstream: Upstream, tmp_path: Path
) -> None:
    bare = _bare_without_refs(upstream, tmp_path)
    # git itself refuses it
    refused = subprocess.run(
        ["git", f"--git-dir={bare}", "rev-parse", "HEAD"], capture_output=True, check=False
    )
    assert refused.returncode != 0
    with open_repo(bare) as repo:
        assert repo.resolve("v1.1") == upstream.fix
        assert set(repo.tags()) == {"v1.0", "v1.1"}
        commits = repo.log(["v1.1", "^v1.0"])
    assert [c.sha for c in commits] == [upstream.fix, *reversed(upstream.noise)]
    assert commits[0].files == ("src/parse.c",)
    assert (commits[0].added, commits[0].deleted) == (2, 0)
    assert not (bare / "refs").exists()  # nothing written into the original


def test_binary_files_are_counted(upstream: Upstream) -> None:
    with open_repo(upstream.work) as repo:
        (commit,) = repo.log([upstream.binary, "-1"])
    assert commit.binary_files == 1
    assert commit.files == ("logo.png",)


def test_output_past_the_limit_is_refused(upstream: Upstream) -> None:
    with open_repo(upstream.work) as repo, pytest.raises(GitError, match="more than 100 bytes"):
        repo.run(["log", "-p", "--all"], max_bytes=100)


def test_a_repository_over_the_size_limit_is_refused(upstream: Upstream) -> None:
    with (
        pytest.raises(InputError, match="larger than the limit of 1000"),
        open_repo(upstream.work, max_bytes=1000),
    ):
        pass


def test_a_url_clone_is_stopped_past_the_size_limit(upstream: Upstream) -> None:
    with (
        pytest.raises(RemoteContentError, match="larger than the limit of 2000 bytes"),
        open_repo(f"file://{upstream.work}", max_bytes=2000),
    ):
        pass


def test_a_url_clone_within_limits_works(upstream: Upstream) -> None:
    with open_repo(f"file://{upstream.work}") as repo:
        assert repo.resolve("v1.0") is not None


def test_unreachable_url_is_an_environment_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="cannot clone"), open_repo(f"file://{tmp_path}/nowhere.git"):
        pass


def test_missing_or_non_git_paths_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no repository"), open_repo(tmp_path / "missing"):
        pass
    with pytest.raises(InputError, match="not a git repository"), open_repo(tmp_path):
        pass


def test_resolve_refuses_option_like_revisions(upstream: Upstream) -> None:
    with open_repo(upstream.work) as repo:
        assert repo.resolve("--all") is None
        assert repo.resolve("deadbeef" * 5) is None
