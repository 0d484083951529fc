"""Candidate sources: plugins with one interface that propose commits for a CVE.

A source's ``collect`` gets the advisory and the opened repository and returns
``Proposal``s: a commit it read from the repository and why it proposes it. Each source
is bounded (commit count through ``GitRepo.log``, bytes and time through ``GitRepo.run``).
``SOURCES`` lists the ones the finder runs by default; the Debian DEP-3 source
(``kiln.research.dep3``) and the discussion adapters (``kiln.research.discussion``) add
references to the record before these run, since they need the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from kiln.research.features import Advisory
from kiln.research.gitrepo import MAX_COMMITS, Commit, GitError, GitRepo
from kiln.research.notes import note_hashes
from kiln.research.record import whole_ids
from kiln.research.versions import TagIndex, advisory_bounds, project_name, tag_windows

DAYS_BEFORE = 730  # the date window when no tags bound the search
DAYS_AFTER = 100
MAX_WINDOW_COMMITS = 5_000  # a tag window wider than this is no window
MAX_MENTIONS = 100  # commits read for the advisory's ids named in messages


@dataclass(frozen=True)
class Proposal:
    """A commit a source proposes, and the source's name."""

    commit: Commit
    source: str
    in_tag_window: bool = False


@dataclass
class SearchContext:
    """What every source reads: the advisory, the repository and its release tags."""

    advisory: Advisory
    repo: GitRepo
    tags: TagIndex
    tag_times: dict[str, int]
    max_commits: int = MAX_COMMITS


class CandidateSource(Protocol):
    """A plugin proposing candidate fix commits."""

    name: str

    def collect(self, ctx: SearchContext) -> list[Proposal]:
        """Bounded proposals for ``ctx.advisory``."""
        ...


class AdvisoryReferences:
    """Commits the advisory names: commit URLs, SHAs in its text, tracker NOTE lines."""

    name = "advisory"

    def collect(self, ctx: SearchContext) -> list[Proposal]:
        """Each referenced SHA that exists in the repository."""
        proposals: list[Proposal] = []
        for sha in sorted(ctx.advisory.referenced_shas)[:50]:
            full = ctx.repo.resolve(sha)
            if full:
                proposals.extend(Proposal(c, self.name) for c in ctx.repo.log([full, "-1"]))
        return proposals


class GitWindow:
    """Non-merge commits on all branches: between last-affected and first-fixed tags when
    the advisory's versions match tags, and a window around the publication date."""

    name = "git"

    def __init__(self, days_before: int = DAYS_BEFORE, days_after: int = DAYS_AFTER) -> None:
        self.days_before = days_before
        self.days_after = days_after

    def collect(self, ctx: SearchContext) -> list[Proposal]:
        """The commits of every tag window, then those of the date window."""
        proposals: list[Proposal] = []
        seen: set[str] = set()
        bounds = advisory_bounds(ctx.advisory.record)
        for window in tag_windows(bounds, ctx.tags):
            if ctx.repo.count(window) > MAX_WINDOW_COMMITS:
                continue
            for commit in ctx.repo.log(window, max_count=MAX_WINDOW_COMMITS):
                if commit.sha not in seen:
                    seen.add(commit.sha)
                    proposals.append(Proposal(commit, self.name, in_tag_window=True))
        published = ctx.advisory.record.published
        if published is not None:
            since = (published - timedelta(days=self.days_before)).strftime("%Y-%m-%d")
            until = (published + timedelta(days=self.days_after)).strftime("%Y-%m-%d")
            revs = ["--all", f"--since={since}", f"--until={until}"]
            for commit in ctx.repo.log(revs, max_count=ctx.max_commits):
                if commit.sha not in seen:
                    seen.add(commit.sha)
                    proposals.append(Proposal(commit, self.name))
        return proposals


class MessageMentions:
    """Commits anywhere in the history (all branches, any date) whose message names the
    advisory's CVE id or one of its GHSA ids, as a whole id (``CVE-2024-2379`` is not
    named by ``CVE-2024-23790``).

    Prospector collects these before any window: a fix committed long after the
    publication (no fixed version in the advisory, so no tag window; past the date
    window's 100 days) or on a branch the windows miss still names the id it fixes, and
    a later "Fix CVE-..." follow-up belongs beside the original for the reviewer.
    ``git log --grep`` reads only messages, so the cost is one pass over the commit
    headers; at most ``MAX_MENTIONS`` commits are read. A search past git's timeout (a
    history of millions of commits) proposes nothing rather than failing the others."""

    name = "mentions"

    def collect(self, ctx: SearchContext) -> list[Proposal]:
        """Each commit whose message names one of the advisory's ids."""
        ids = advisory_ids(ctx.advisory)
        if not ids:
            return []
        greps = [f"--grep={i}" for i in ids]
        try:
            found = ctx.repo.log(
                ["--all", "--regexp-ignore-case", "--fixed-strings", *greps],
                max_count=MAX_MENTIONS,
            )
        except GitError:
            # a history too long to search within git's timeout: the windows still stand
            return []
        whole = whole_ids(ids)
        return [Proposal(c, self.name) for c in found if whole.search(c.message)]


def fixed_tag_times(ctx_tags: TagIndex, tag_times: dict[str, int], advisory: Advisory) -> list[int]:
    """Commit times of the tags of the versions the advisory says are fixed."""
    times: list[int] = []
    bounds = advisory_bounds(advisory.record)
    for version in bounds.fixed:
        tag = ctx_tags.tag(version)
        if tag and tag in tag_times:
            times.append(tag_times[tag])
    for version in bounds.last_affected:
        tag = ctx_tags.following(version) if ctx_tags.tag(version) else None
        if tag and tag in tag_times:
            times.append(tag_times[tag])
    return times


_COMMIT_URL = re.compile(r"/commits?/([0-9a-f]{7,40})\b")
# an id that is safe on git's command line and in a pattern: CVE-YYYY-N... or GHSA-xxxx-xxxx-xxxx
_ID = re.compile(r"(?i)CVE-\d{4}-\d{4,7}|GHSA(?:-[0-9a-z]{4}){3}")


def advisory_ids(advisory: Advisory) -> list[str]:
    """The advisory's CVE and GHSA ids that are ids (safe on git's command line)."""
    return [i for i in [advisory.record.cve, *sorted(advisory.ghsa)] if _ID.fullmatch(i)]


class NoteHashes:
    """Commits the project's release notes on the CVE name by hash
    (``Advisory.release_notes``, read before the sources run), at most ``MAX_NOTE_HASHES``:
    jq's NEWS gives each CVE's fix commit; one outside every window is still proposed."""

    name = "notes"

    def collect(self, ctx: SearchContext) -> list[Proposal]:
        """Each hash of an entry that is a commit of the repository."""
        proposals: list[Proposal] = []
        for h in note_hashes(ctx.advisory.release_notes)[:MAX_NOTE_HASHES]:
            full = ctx.repo.resolve(h)
            if full:
                proposals.extend(Proposal(c, self.name) for c in ctx.repo.log([full, "-1"]))
        return proposals


MAX_NOTE_HASHES = 20

# a link to an issue or pull/merge request page: the project's name, the kind, the number
_ISSUE_PAGE = re.compile(
    r"(?i)^https?://[^/?#]+/(?:[^/?#]+/)*?([^/?#]+?)(?:\.git)?/(?:-/)?"
    r"(?:issues|pull|pulls|merge_requests)/(\d{1,7})(?:[/?#]|$)"
)
MAX_ISSUES = 4  # of the advisory's own issue links searched for
MAX_ISSUE_MENTIONS = 30  # commits read per issue number


def own_issue_numbers(advisory: Advisory, project: str) -> list[str]:
    """The numbers of the project's own issues and pull/merge requests that the
    advisory links, in the references' order (at most ``MAX_ISSUES``). Another
    project's issue 958 is not this one's: a link is the project's when the path
    segment before ``issues``/``pull`` is the repository's name. One-digit numbers are
    left out (``#1`` is a list item as often as an issue)."""
    numbers: list[str] = []
    for url in advisory.record.references:
        m = _ISSUE_PAGE.match(url)
        if not m or not project or m.group(1).lower() != project or len(m.group(2)) < 2:
            continue  # another project's, or "#7", which too many messages say otherwise
        if m.group(2) not in numbers:
            numbers.append(m.group(2))
    return numbers[:MAX_ISSUES]


def _cites_issue(number: str) -> re.Pattern[str]:
    # "#958", "GH-958", "!958" (a GitLab merge request), ".../issues/958", "pull/958"
    return re.compile(
        rf"(?:(?<![\w&])#|\bGH-|(?<![\w!])!|/(?:issues|pull|pulls|merge_requests)/){number}(?!\d)",
        re.IGNORECASE,
    )


class IssueMentions:
    """Commits of any branch and any date whose message cites an issue or pull request
    of the project that the advisory links (``Fixes #958``, ``(#1961)``, a GitLab
    ``!42``, the page's URL). A maintainer who fixes a reported issue names it, and the
    fix may land long after the advisory was published (no fixed version, so no tag
    window; past the date window's 100 days). ``git log --grep`` reads only messages; each
    number's commits are read up to ``MAX_ISSUE_MENTIONS`` and checked with a whole-
    number pattern (``#9580`` does not cite 958). A search past git's timeout proposes
    nothing rather than failing the others."""

    name = "issues"

    def collect(self, ctx: SearchContext) -> list[Proposal]:
        """Each commit whose message cites one of the advisory's own issue numbers."""
        proposals: list[Proposal] = []
        for number in own_issue_numbers(ctx.advisory, project_name(ctx.repo.name)):
            grep = f"--grep=(#|GH-|!|/issues/|/pull/|/pulls/|/merge_requests/){number}([^0-9]|$)"
            try:
                found = ctx.repo.log(
                    ["--all", "--extended-regexp", "--regexp-ignore-case", grep],
                    max_count=MAX_ISSUE_MENTIONS,
                )
            except GitError:
                continue
            cites = _cites_issue(number)
            proposals.extend(Proposal(c, self.name) for c in found if cites.search(c.message))
        return proposals


SOURCES: tuple[CandidateSource, ...] = (
    AdvisoryReferences(),
    GitWindow(),
    MessageMentions(),
    NoteHashes(),
    IssueMentions(),
)
