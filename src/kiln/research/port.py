"""Port an upstream fix onto the release's upstream version by a 3-way merge.

When a fix's diff does not apply to the release's source (the code around it moved
between the release and the fix), git can often still carry the change: ``git
cherry-pick --no-commit`` of the fix onto the release's upstream tag (``curl-8_14_1``
for ``8.14.1-2+deb13u5``, found as discovery finds it: ``discover.has_upstream_history``)
merges the fix's own change (its parent → the fix) into the tag's tree. The merged
result, as a diff from the tag, is the ported patch; a conflict is a
``PortConflictError`` naming the conflicted files.

Everything runs in a scratch git dir in a temporary folder that borrows the
repository's objects (``objects/info/alternates``, as ``gitrepo`` opens read-only
clones) with its own HEAD, index and work tree; the repository is never written and
the folder is removed afterwards, merged or not. Each git command has
``gitrepo.GIT_TIMEOUT``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kiln.errors import InputError
from kiln.pipeline.backport import PatchRejectedError
from kiln.research.gitrepo import SHA, GitError, GitRepo, _scratch_for
from kiln.research.patch import MAX_PATCH_BYTES, checked_diff

MAX_CONFLICTS_LISTED = 50


class PortConflictError(PatchRejectedError):
    """The fix does not apply, and its 3-way merge onto the release's tag conflicts."""


@contextmanager
def _worktree(repo: GitRepo) -> Iterator[GitRepo]:
    """A scratch repository with a work tree, reading ``repo``'s objects (never writing them)."""
    with tempfile.TemporaryDirectory(prefix="kiln-port-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        git_dir = _scratch_for(repo.git_dir.resolve(), Path(tmp) / "git")
        quoted = str(tree).replace("\\", "\\\\").replace('"', '\\"')
        (git_dir / "config").write_text(
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
            f'\tworktree = "{quoted}"\n\tautocrlf = false\n\thooksPath = /dev/null\n'
            "[user]\n\tname = kiln\n\temail = kiln@kiln.invalid\n"
        )
        yield GitRepo(git_dir, name=f"{repo.name} (3-way port)")


def _unmerged(scratch: GitRepo) -> list[str]:
    out = scratch.run(["diff", "--name-only", "--diff-filter=U", "-z"], check=False)
    return [p for p in out.decode("utf-8", "replace").split("\0") if p]


def port_commit(
    repo: GitRepo,
    sha: str,
    tag: str,
    *,
    target: str,
    rejected: Sequence[str] = (),
) -> bytes:
    """The diff from ``tag`` to ``tag`` with ``sha`` cherry-picked onto it (``-p1``).

    ``target`` names what the port is for in messages (``curl 8.14.1-2+deb13u5``);
    ``rejected`` are the hunks a plain ``patch`` rejected, carried into the conflict
    error. ``PortConflictError`` (nothing written) when the merge conflicts;
    ``PolicyError`` for a result a quilt patch cannot carry (``patch.checked_diff``).
    """
    commit = repo.resolve(sha) if SHA.match(sha) else None
    onto = repo.resolve(tag)
    if commit is None or onto is None:
        missing = sha if commit is None else tag
        raise InputError(f"{repo.name} has no commit {missing!r} to port")
    with _worktree(repo) as scratch:
        scratch.run(["checkout", "--quiet", "--force", "--detach", onto])
        try:
            scratch.run(["cherry-pick", "--no-commit", "--allow-empty", commit])
        except GitError:
            conflicted = _unmerged(scratch)
            if not conflicted:
                raise  # not a conflict: git's own failure, named by GitError
            shown = conflicted[:MAX_CONFLICTS_LISTED]
            more = len(conflicted) - len(shown)
            raise PortConflictError(
                f"the fix {commit[:12]} does not apply to {target}, and its 3-way merge "
                f"onto {tag} conflicts in {len(conflicted)} file(s): {', '.join(shown)}"
                + (f" and {more} more" if more else ""),
                details=[
                    *(f"conflict: {path}" for path in shown),
                    *(f"patch: {line}" for line in rejected),
                ],
                hint="the code moved too far for git to carry the change: port it by hand "
                "(dpkg-source -x, quilt push, fix the rejects, quilt refresh)",
            ) from None
        diff = scratch.run(
            ["diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames", onto],
            max_bytes=MAX_PATCH_BYTES,
        )
    if not diff.strip():
        raise PatchRejectedError(
            f"the fix {commit[:12]} changes nothing on {tag}: {target} may already carry it",
            details=[f"patch: {line}" for line in rejected],
        )
    return checked_diff(diff, where=f"commit {commit[:12]} ported onto {tag}")
