"""Real git repositories for the research tests, made with git itself.

``make_repo`` builds a small upstream history (tags, a fix commit naming an issue, a
binary file); ``FIXBENCH`` is the shared development set, used by the tests that rank
real history (skipped when it is absent, as on a machine without ../shared).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kiln.research.sources import CandidateSource

FIXBENCH = Path(os.environ.get("KILN_FIXBENCH", "/work/shared/fixbench"))


def git(cwd: Path, *args: str, date: str = "2024-01-01T00:00:00Z") -> str:
    """Run git in ``cwd`` with a fixed identity and commit date."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


@dataclass(frozen=True)
class Upstream:
    """A work tree and what the tests look for in it."""

    work: Path
    fix: str
    binary: str
    noise: list[str]


def make_repo(root: Path) -> Upstream:
    """v1.0 → noise commits → the fix of issue #42 in parse.c → v1.1 → a binary commit."""
    work = root / "upstream"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    src = work / "src"
    src.mkdir()
    (src / "parse.c").write_text(
        "int parse(const char *buf, int len) {\n"
        "    char out[16];\n"
        "    for (int i = 0; i < len; i++)\n"
        "        out[i] = buf[i];\n"
        "    return out[0];\n"
        "}\n"
    )
    (work / "README").write_text("demo\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "initial import", date="2023-06-01T00:00:00Z")
    git(work, "tag", "v1.0")
    noise: list[str] = []
    for i in range(5):
        (work / "README").write_text(f"demo {i}\n")
        git(
            work,
            "commit",
            "-q",
            "-am",
            f"docs: reword the readme ({i})",
            date=f"2023-07-0{i + 1}T00:00:00Z",
        )
        noise.append(git(work, "rev-parse", "HEAD"))
    (src / "parse.c").write_text(
        "int parse(const char *buf, int len) {\n"
        "    char out[16];\n"
        "    if (len > 16)\n"
        "        return -1;\n"
        "    for (int i = 0; i < len; i++)\n"
        "        out[i] = buf[i];\n"
        "    return out[0];\n"
        "}\n"
    )
    git(
        work,
        "commit",
        "-q",
        "-am",
        "parse: check the length before copying\n\nA long buffer overflowed out[].\nCloses #42",
        date="2023-08-01T00:00:00Z",
    )
    fix = git(work, "rev-parse", "HEAD")
    git(work, "tag", "v1.1", date="2023-08-02T00:00:00Z")
    (work / "logo.png").write_bytes(bytes(range(256)) * 4)
    git(work, "add", "logo.png")
    git(work, "commit", "-q", "-m", "add a logo", date="2023-09-01T00:00:00Z")
    binary = git(work, "rev-parse", "HEAD")
    return Upstream(work, fix, binary, noise)


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """A fresh upstream repository in ``tmp_path``."""
    return make_repo(tmp_path)


def record_json(**fields: object) -> dict[str, object]:
    """A fixbench-style record about the demo repository's overflow."""
    base: dict[str, object] = {
        "cve": "CVE-2023-0001",
        "repo": "demo/upstream",
        "published": "2023-08-10T00:00:00",
        "description": "A buffer overflow in parse() of demo before 1.1 lets a long input "
        "overwrite the stack.",
        "cwe": ["CWE-787"],
        "cpe_version_ranges": [
            {"criteria": "cpe:2.3:a:demo:demo:*:*:*:*:*:*:*:*", "versionEndExcluding": "1.1"}
        ],
        "affected_versions_cna": None,
        "references_without_commits": ["https://example.org/demo/upstream/issues/42"],
    }
    base.update(fields)
    return base


LATE = "2027-03-01T00:00:00Z"  # years after record_json's publication (2023-08-10)


def late_commit(upstream: Upstream, path: str, message: str) -> str:
    """A commit changing ``src/<path>``, dated ``LATE``: outside every window."""
    (upstream.work / "src" / path).write_text(f"/* {message[:20]} */\n")
    git(upstream.work, "add", "src")
    git(upstream.work, "commit", "-q", "-m", message, date=LATE)
    return git(upstream.work, "rev-parse", "HEAD")


def proposed(source: CandidateSource, upstream: Upstream, **fields: object) -> list[str]:
    """The commits ``source`` (a ``CandidateSource``) proposes for a record made by
    ``record_json(**fields)`` on ``upstream``'s repository."""
    from kiln.errors import Location
    from kiln.research.features import Advisory
    from kiln.research.gitrepo import open_repo
    from kiln.research.record import record_from_json
    from kiln.research.sources import SearchContext
    from kiln.research.versions import TagIndex

    record = record_from_json(record_json(**fields), Location("t")).record
    with open_repo(upstream.work) as repo:
        raw = repo.tags()
        ctx = SearchContext(
            advisory=Advisory.of(record),
            repo=repo,
            tags=TagIndex.build(raw),
            tag_times={name: when for name, (_sha, when) in raw.items()},
        )
        return [p.commit.sha for p in source.collect(ctx)]


def git_log_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ``GitRepo.log`` fail as a search past git's timeout does."""
    from kiln.research.gitrepo import GitError, GitRepo

    def too_slow(self: GitRepo, revs: object, *, max_count: int = 0) -> list[object]:
        raise GitError("git log timed out after 60 s")

    monkeypatch.setattr(GitRepo, "log", too_slow)
