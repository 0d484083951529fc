"""The dry-run forge: says what it would open or update, and writes nothing anywhere."""

from __future__ import annotations

from kiln.forge.model import ChangeRequest, Forge, PullRequest


class DryRunForge:
    """A ``Forge`` that records nothing: ``open_or_update`` answers what it would do.

    Given the real forge as ``view``, it reads (never writes) its pull requests, so the
    answer for a generation that already has a pull request is that pull request, and
    a new generation for an open one keeps its id. A pull request it would open new
    gets id 0 and no url. ``proposals`` keeps, in memory only, every answer given.
    """

    def __init__(self, view: Forge | None = None) -> None:
        self._view = view
        self.proposals: list[PullRequest] = []

    def open_or_update(self, change: ChangeRequest) -> PullRequest:
        """What the real forge would answer for ``change``, without writing anything."""
        existing = self._view.list() if self._view is not None else []
        mine = [pr for pr in existing if (pr.image, pr.kind) == (change.image, change.kind)]
        same = next((pr for pr in mine if pr.generation == change.generation), None)
        if same is not None:
            return same
        current = next((pr for pr in mine if pr.state == "open"), None)
        previous = current
        pr = change.pull_request(
            current.id if current else 0,
            previous=previous,
            head=None,
            url=current.url if current else None,
        )
        self.proposals.append(pr)
        return pr

    def list(self) -> list[PullRequest]:
        """The real forge's pull requests (the dry run adds none)."""
        return self._view.list() if self._view is not None else []
