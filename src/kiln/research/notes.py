"""The project's own release notes on the CVE: which commit they say fixed it.

Many projects write the CVE id into their NEWS, CHANGES or release notes beside the
line that describes the fix, and that line is often the fix commit's own subject
(libxml2's ``- [CVE-2022-2309] Reset nsNr in xmlCtxtReset``, jq's ``- CVE-2024-23337:
Fix signed integer overflow in ...``), or names the pull request (expat's ``#616 #649
CVE-2022-43680 -- Fix ...``) or the commit. A security researcher reads these first; an
advisory's text shares few words with such a fix.

``note_entries`` greps the notes files of the given revisions (the default branch and
the fixed versions' tags) for the ids with one bounded ``git grep``; each hit and the
lines that continue it (indented deeper, at most ``MAX_ENTRY_LINES``) is one
``NoteEntry``. ``NoteEntry.names`` says whether an entry names a commit: by a hash
prefix, by an issue or pull-request number its message cites, or by its subject, when
most of the subject's word pairs are in the entry (a one-word or two-word subject never
matches). A repository whose grep fails or overruns its bounds has no entries: the
notes add evidence, they are never needed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kiln.research.gitrepo import Commit, GitError, GitRepo
from kiln.research.record import whole_ids

# files whose name says they are release notes, at any depth, any case, any extension;
# and the fragments of towncrier-like folders
NOTE_PATHSPECS = tuple(
    f":(icase,glob)**/{name}"
    for name in (
        "NEWS*",
        "CHANGES*",
        "CHANGELOG*",
        "RELEASE-NOTES*",
        "RELEASE_NOTES*",
        "RELEASENOTES*",
        "HISTORY*",
        "news.d/**",
        "changelog.d/**",
        "newsfragments/**",
    )
)
MAX_GREP_BYTES = 256 << 10
GREP_TIMEOUT = 20.0
MAX_ENTRY_LINES = 6  # a hit and the lines continuing it
MAX_ENTRIES = 20
MAX_ENTRY_CHARS = 1000
SUBJECT_PAIRS = 0.8  # of a subject's word pairs that must be in the entry

_WORD = re.compile(r"[a-z0-9_]+")
_HASH = re.compile(r"\b[0-9a-f]{7,40}\b")
_NUMBER = re.compile(
    r"(?i)(?:(?<![\w&/])#|\bgh-|\bpr\s*#?|/pull/|/issues/|/merge_requests/)(\d{2,7})\b"
)
_REV = re.compile(r"[0-9A-Za-z._/+-]{1,200}")


@dataclass(frozen=True)
class NoteEntry:
    """One release-notes entry naming the CVE: where, and its text."""

    rev: str
    path: str
    line: int
    text: str

    @property
    def where(self) -> str:
        """``NEWS:1538`` (at the revision searched)."""
        return f"{self.path}:{self.line}"

    def hashes(self) -> list[str]:
        """The commit hashes (prefixes) the entry names: hex words with a digit and a
        letter, 7 to 40 long."""
        return [
            h
            for h in _HASH.findall(self.text.lower())
            if re.search(r"\d", h) and re.search(r"[a-f]", h)
        ]

    def names(self, commit: Commit) -> str | None:
        """How this entry names ``commit`` (a hash, an issue number its message cites,
        its subject), or None."""
        for h in self.hashes():
            if commit.sha.startswith(h):
                return f"its hash {h}"
        cited = set(_NUMBER.findall(commit.message))
        for number in _NUMBER.findall(self.text):
            if number in cited:
                return f"#{number}, which its message cites"
        pairs = _pairs(commit.subject)
        if len(pairs) >= 2 and len(pairs & _pairs(self.text)) >= SUBJECT_PAIRS * len(pairs):
            return "its subject"
        return None


def note_hashes(entries: Sequence[NoteEntry]) -> list[str]:
    """Every entry's hashes, each once, in order."""
    return list(dict.fromkeys(h for e in entries for h in e.hashes()))


def _pairs(text: str) -> set[tuple[str, str]]:
    words = _WORD.findall(text.lower())
    return set(itertools.pairwise(words))


def note_entries(repo: GitRepo, ids: Sequence[str], revs: Sequence[str]) -> tuple[NoteEntry, ...]:
    """The notes entries of ``revs`` naming any of ``ids`` (checked ids only: see
    ``sources.whole_ids``), at most ``MAX_ENTRIES``; none when git fails or overruns."""
    checked = [r for r in dict.fromkeys(revs) if _REV.fullmatch(r) and not r.startswith("-")]
    if not ids or not checked:
        return ()
    patterns = [a for i in ids for a in ("-e", i)]
    try:
        out = repo.run(
            ["grep", "-z", "-n", "-I", "-i", "-F", "-A", str(MAX_ENTRY_LINES - 1), *patterns,
             *checked, "--", *NOTE_PATHSPECS],
            timeout=GREP_TIMEOUT, max_bytes=MAX_GREP_BYTES, check=False,
        )  # fmt: skip
    except GitError:
        return ()
    whole = whole_ids(ids)
    lines: list[tuple[str, str, int, str]] = []
    for raw in out.decode("utf-8", "replace").splitlines():
        parts = raw.split("\0")
        if len(parts) != 3 or ":" not in parts[0] or not parts[1].isdigit():
            lines.append(("", "", 0, ""))  # git's "--" between groups ends an entry
            continue
        rev, path = parts[0].split(":", 1)
        lines.append((rev, path, int(parts[1]), parts[2]))
    entries: list[NoteEntry] = []
    seen: set[str] = set()
    for i, (rev, path, number, text) in enumerate(lines):
        if not path or not whole.search(text):
            continue
        indent = len(text) - len(text.lstrip())
        body = [text.strip()]
        for next_rev, next_path, next_number, more in lines[i + 1 : i + MAX_ENTRY_LINES]:
            deeper = len(more) - len(more.lstrip()) > indent
            contiguous = (next_rev, next_path, next_number) == (rev, path, number + len(body))
            if not contiguous or not more.strip() or not deeper or whole.search(more):
                break
            body.append(more.strip())
        entry = " ".join(body)[:MAX_ENTRY_CHARS]
        if entry in seen:  # the same entry at another revision
            continue
        seen.add(entry)
        entries.append(NoteEntry(rev, path, number, entry))
        if len(entries) >= MAX_ENTRIES:
            break
    return tuple(entries)
