"""A real git repository for the forge tests: a catalog checkout with one commit on main."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kiln.forge import ChangeRequest, CveRow, Evidence


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    """Run git in ``repo`` as a user would (porcelain), for setting up and checking."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "user",
        "GIT_AUTHOR_EMAIL": "user@example.org",
        "GIT_COMMITTER_NAME": "user",
        "GIT_COMMITTER_EMAIL": "user@example.org",
        "GIT_AUTHOR_DATE": "1700000000 +0000",
        "GIT_COMMITTER_DATE": "1700000000 +0000",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=data, capture_output=True, check=True, env=env
    )
    return done.stdout.decode()


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A catalog checkout: images/python.yaml and its lock committed on main."""
    repo = tmp_path / "catalog"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "images").mkdir()
    (repo / "images" / "python.yaml").write_text("name: python\n")
    (repo / "images" / "python.lock.json").write_text('{"lock_version": 1}\n')
    (repo / "README.md").write_text("catalog\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def change(
    generation: str = "g1",
    *,
    image: str = "python",
    kind: str = "bump",
    lock: bytes = b'{"lock_version": 1, "new": true}\n',
    extra: dict[str, bytes | None] | None = None,
) -> ChangeRequest:
    """A bump of ``image`` fixing CVE-2025-0001, its lock replaced by ``lock``."""
    evidence = Evidence(
        image=image,
        kind=kind,  # type: ignore[arg-type]  # tests pass kinds as plain strings
        generation=generation,
        cves_before=(CveRow("CVE-2025-0001", "openssl", "3.0.1", "high", "3.0.2"),),
    )
    return ChangeRequest(
        image=image,
        kind=kind,  # type: ignore[arg-type]
        generation=generation,
        title=f"Bump {image}",
        evidence=evidence,
        files={f"images/{image}.lock.json": lock, **(extra or {})},
    )
