"""An upstream commit as a quilt patch with DEP-3 headers, ready for a backport.

The diff is git's own (``a/`` and ``b/`` prefixes, applied with ``-p1`` as quilt does);
a commit touching binary files is refused (a quilt patch cannot carry them), and so is
one naming a path outside the tree. The headers say where the change comes from
(``Origin: upstream, <commit URL or id>``), the bug it fixes, the CVE, that it need not
be forwarded (it *is* upstream) and when it was made; kiln's DEP-3 checker
(``kiln.recipes.dep3.parse_dep3``) accepts the result.
"""

from __future__ import annotations

import datetime as dt
import re

from kiln.errors import KilnError, PolicyError
from kiln.research.affected import parse_hunks
from kiln.research.gitrepo import Commit, GitRepo
from kiln.research.record import CveRecord

MAX_PATCH_BYTES = 8 << 20
_ISSUE_URL = re.compile(r"/(?:issues|pull|pulls|merge_requests)/\d+")


def commit_url(repo_url: str | None, sha: str) -> str:
    """A web link to ``sha`` when the repository is a GitHub/GitLab-style URL, else its id."""
    if repo_url and re.match(r"^https://[\w.-]+/[\w.-]+/[\w.-]+?(?:\.git)?/?$", repo_url):
        base = repo_url.rstrip("/").removesuffix(".git")
        return f"{base}/commit/{sha}"
    return f"commit:{sha}"


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def dep3_headers(
    record: CveRecord, commit: Commit, *, repo_url: str | None, today: dt.date
) -> list[tuple[str, str]]:
    """The DEP-3 fields for a backport of ``commit`` fixing ``record.cve``."""
    body = [line for line in commit.message.splitlines()[1:] if line.strip()][:6]
    description = _one_line(commit.subject) or f"fix for {record.cve}"
    if body:
        description += "\n" + "\n".join(f" {_one_line(line, 100)}" for line in body)
    headers = [
        ("Description", description),
        ("Origin", f"upstream, {commit_url(repo_url, commit.sha)}"),
    ]
    bugs = [u for u in record.references if _ISSUE_URL.search(u)]
    bug = bugs[0] if bugs else (record.references[0] if record.references else None)
    if bug:
        headers.append(("Bug", _one_line(bug, 300)))
    headers += [
        ("CVE", record.cve),
        ("Forwarded", "not-needed"),
        ("Last-Update", today.isoformat()),
    ]
    return headers


def commit_diff(repo: GitRepo, commit: Commit) -> bytes:
    """The commit's diff for quilt (``-p1``); PolicyError for binary files or unsafe paths."""
    if commit.binary_files:
        raise PolicyError(
            f"commit {commit.sha[:12]} touches {commit.binary_files} binary file(s): "
            "a quilt patch cannot carry them",
            hint="backport the text part by hand, or take the change from a release tarball",
        )
    diff = repo.run(
        ["show", "--format=", "--no-color", "--no-ext-diff", "--no-renames", commit.sha],
        max_bytes=MAX_PATCH_BYTES,
    )
    return checked_diff(diff, where=f"commit {commit.sha[:12]}")


def checked_diff(diff: bytes, *, where: str) -> bytes:
    """``diff`` if a quilt patch can carry it; PolicyError for binary parts, InputError
    for ``../`` or absolute paths (``where`` names the diff in messages)."""
    text = diff.decode("utf-8", "replace")
    if "\nBinary files " in f"\n{text}" or "GIT binary patch" in text:
        raise PolicyError(f"{where}'s diff has binary parts")
    parse_hunks(text, where=where)  # refuses ../ and absolute paths
    return diff


def ported_headers(headers: list[tuple[str, str]], tag: str) -> list[tuple[str, str]]:
    """The DEP-3 fields of a fix ported by a 3-way merge onto upstream tag ``tag``: the
    same ``Origin`` (the upstream commit), a ``Description`` saying how it was made."""
    note = (
        f" Ported by kiln: the upstream commit did not apply as is; this is its 3-way "
        f"merge onto the upstream tag {tag} (git cherry-pick), as a diff from that tag."
    )
    return [(k, f"{v}\n{note}" if k == "Description" else v) for k, v in headers]


def add_port_hint(exc: KilnError, tag: str, release: str) -> None:
    """Say in ``exc``'s hint that the patch that failed to build is a 3-way port: git
    merged the text, but a fix written against a newer API still breaks the build
    (libxml2 CVE-2026-86142 called a function 2.9.14 does not have)."""
    port = (
        f"the patch is a 3-way port onto {tag}: git merged the text, but the fix may call "
        f"code {release} does not have (a newer API); port it by hand with the release's "
        "own functions"
    )
    exc.hint = f"{port}; {exc.hint}" if exc.hint else port


def render_patch(headers: list[tuple[str, str]], diff: bytes) -> bytes:
    """Header block, a blank line, then the diff: one quilt patch file."""
    lines = []
    for name, value in headers:
        first, *rest = value.split("\n")
        lines.append(f"{name}: {first}")
        lines.extend(rest)
    return ("\n".join(lines) + "\n---\n").encode() + diff
