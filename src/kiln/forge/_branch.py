"""The commit a change puts on its branch, shared by the local and the remote forges."""

from __future__ import annotations

from kiln.forge._git import Git, Identity
from kiln.forge.model import ChangeRequest


def branch_commit(
    git: Git,
    change: ChangeRequest,
    *,
    base: str,
    tip: str | None,
    identity: Identity,
    when: int,
) -> str:
    """The commit of ``change`` on top of ``base``, continuing ``tip`` when given.

    ``tip`` is the branch of the open pull request being updated (None for a new one):
    the branch keeps its history, and a base that moved since comes in as a second
    parent. The tree is always the base's tree with the change's files, so a generation
    says the whole change. A generation that changes no file gives ``tip`` itself.
    """
    tree = git.build_tree(base, change.files)
    if tip is None:
        parents = [base]
    else:
        parents = [tip] if git.is_ancestor(base, tip) else [tip, base]
        if parents == [tip] and git.tree_of(tip) == tree:
            return tip
    return git.commit_tree(tree, parents, commit_message(change), identity=identity, when=when)


def commit_message(change: ChangeRequest) -> str:
    """The commit message: the title, then kiln's trailers (generation, CVEs fixed)."""
    fixed = ", ".join(change.evidence.cves_fixed) or "none"
    return (
        f"{change.title.strip().splitlines()[0]}\n\n"
        f"kiln {change.kind} of {change.image}.\n\n"
        f"Kiln-Generation: {change.generation}\n"
        f"Kiln-Fixes: {fixed}\n"
    )


def is_kiln_commit(git: Git, commit: str, change: ChangeRequest, identity: Identity) -> bool:
    """Whether ``commit`` is kiln's own commit for ``change``'s branch (committed by
    ``identity``, with kiln's trailers): a branch at such a commit may be moved on; a
    branch at any other commit holds someone else's work."""
    text = git.run("show", "-s", "--format=%cn <%ce>%n%B", commit, what=f"read commit {commit}")
    committer, _, message = text.partition("\n")
    trailer = f"kiln {change.kind} of {change.image}."
    mine = f"{identity.name} <{identity.email}>"
    return committer == mine and trailer in message and "Kiln-Generation: " in message
