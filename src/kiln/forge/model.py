"""What a forge is asked for and what it answers: ``ChangeRequest``, ``PullRequest``, ``Forge``.

One change is one branch ``kiln/<kind>/<image>`` on top of the base branch, holding the
files the factory computed for one *generation* (a hash of the change's inputs). A forge
never opens a second pull request for the same (image, kind, generation); a new
generation for the same image and kind updates the open one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kiln.errors import InputError
from kiln.forge.evidence import CHANGE_KINDS, ChangeKind, CheckStatus, Evidence

PrState = Literal["open", "merged", "closed"]
PR_STATES: tuple[PrState, ...] = ("open", "merged", "closed")

# an image name as the catalog spells it: it becomes part of a git ref
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_GENERATION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_.+@-][A-Za-z0-9_.+@~-]*$")


def branch_name(kind: ChangeKind, image: str) -> str:
    """The branch of every pull request for (``kind``, ``image``): ``kiln/<kind>/<image>``."""
    return f"kiln/{kind}/{image}"


def check_repo_path(path: str, *, where: str = "change") -> str:
    """``path`` if it is a plain relative path inside the repository, else ``InputError``.

    Refused: absolute paths, ``.``/``..`` and empty components, backslashes, a ``.git``
    component, and characters outside a conservative set (git would accept more, but a
    catalog file never needs them and a reviewer must be able to read the name).
    """
    parts = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or any(part.lower() == ".git" for part in parts)
        or not all(_PATH_PART.match(part) for part in parts)
        or len(path) > 400
    )
    if bad:
        raise InputError(f"{where}: {path!r} is not a plain relative path inside the repository")
    return path


@dataclass(frozen=True)
class ChangeRequest:
    """One proposed change: its files (``None`` deletes a file) and its evidence."""

    image: str
    kind: ChangeKind
    generation: str
    title: str
    evidence: Evidence
    files: Mapping[str, bytes | None]
    base: str = "main"

    def __post_init__(self) -> None:
        where = f"change {self.kind}/{self.image}"
        if not _IMAGE.match(self.image):
            raise InputError(f"{where}: image name {self.image!r} cannot be part of a branch name")
        if self.kind not in CHANGE_KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(CHANGE_KINDS)}")
        if not _GENERATION.match(self.generation):
            raise InputError(f"{where}: generation {self.generation!r} is not a plain token")
        if not _BRANCH.match(self.base) or ".." in self.base or self.base.endswith((".lock", "/")):
            raise InputError(f"{where}: base branch {self.base!r} is not a valid branch name")
        if not self.title.strip():
            raise InputError(f"{where}: the title is empty")
        if not self.files:
            raise InputError(f"{where}: the change has no files")
        for path in self.files:
            check_repo_path(path, where=where)
        if (self.evidence.image, self.evidence.kind) != (self.image, self.kind):
            raise InputError(
                f"{where}: the evidence is about {self.evidence.kind}/{self.evidence.image}"
            )

    @property
    def branch(self) -> str:
        """The change's branch, ``kiln/<kind>/<image>``."""
        return branch_name(self.kind, self.image)

    def pull_request(
        self, pr_id: int, *, previous: PullRequest | None, head: str | None, url: str | None
    ) -> PullRequest:
        """The open pull request for this change: new (``previous`` None) or updating one."""
        return PullRequest(
            id=pr_id,
            image=self.image,
            kind=self.kind,
            branch=self.branch,
            generation=self.generation,
            cves_fixed=self.evidence.cves_fixed,
            checks=self.evidence.checks,
            state="open",
            url=url,
            title=self.title,
            base=self.base,
            head=head,
            generations=(*(previous.generations if previous else ()), self.generation),
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels a remote forge puts on the pull request."""
        extra = ("needs review",) if self.kind == "research" else ()
        return ("kiln", self.kind, *extra)


@dataclass(frozen=True)
class PullRequest:
    """A pull request as a forge holds it (the keys of ``kiln factory prs --json``)."""

    id: int
    image: str
    kind: ChangeKind
    branch: str
    generation: str
    cves_fixed: tuple[str, ...]
    checks: Mapping[str, CheckStatus]
    state: PrState
    url: str | None
    title: str
    base: str = "main"
    head: str | None = None
    generations: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The pull request as JSON-ready data (``kiln factory prs --json``)."""
        return {
            "id": self.id,
            "image": self.image,
            "kind": self.kind,
            "branch": self.branch,
            "generation": self.generation,
            "cves_fixed": list(self.cves_fixed),
            "checks": dict(sorted(self.checks.items())),
            "state": self.state,
            "url": self.url,
            "title": self.title,
            "base": self.base,
            "head": self.head,
            "generations": list(self.generations),
        }


class Forge(Protocol):
    """Where pull requests live: the local git forge, GitHub, GitLab, Forgejo."""

    def open_or_update(self, change: ChangeRequest) -> PullRequest:
        """The pull request for ``change``: the existing one for its generation, the open
        one for its image and kind updated to it, or a new one."""
        ...

    def list(self) -> list[PullRequest]:
        """Every pull request kiln opened, oldest first."""
        ...
