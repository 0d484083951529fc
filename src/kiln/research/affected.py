"""Affected or not: does a stable source tree carry the code a fix commit changes?

Each hunk of the fix's diff has a pre-image: the context and removed lines as they were
before the fix. A hunk has a counterpart in the tree when its file exists there (same
path, else the only file of that name) and the pre-image's lines appear in it in order
(compared without surrounding whitespace; a hunk that only adds lines needs its
context). When no hunk that touches code (tests and docs aside) has a counterpart, the
code the fix changes is not in that release: the verdict is ``not_affected`` with the
OpenVEX justification ``vulnerable_code_not_present`` and, as evidence, every hunk
without counterpart. When all code hunks have one, the release is ``affected``; in
between, ``under_investigation`` (a human decides, with the same evidence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kiln.errors import InputError, Location

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_DOC_OR_TEST = re.compile(
    r"(?i)(^|/)(tests?|docs?|doc|man|changes|changelog|news|NEWS)(/|$)|\.(md|rst|txt|[1-9])$"
)
MAX_FILE_BYTES = 16 << 20
MAX_TREE_FILES = 200_000


@dataclass(frozen=True)
class Hunk:
    """One hunk of a diff: its file, header and pre-image (context and removed lines)."""

    path: str
    header: str
    before: tuple[str, ...]
    removed: int
    added: int


@dataclass(frozen=True)
class HunkVerdict:
    """Whether one hunk has a counterpart in the tree, and why not."""

    hunk: Hunk
    present: bool
    reason: str
    matched_path: str | None = None

    def as_json(self) -> dict[str, object]:
        """The evidence line a VEX statement or a pull request quotes."""
        return {
            "file": self.hunk.path,
            "hunk": self.hunk.header,
            "present": self.present,
            "reason": self.reason,
            "matched": self.matched_path,
        }


@dataclass(frozen=True)
class AffectedVerdict:
    """The decision for one release's tree, with per-hunk evidence."""

    status: str  # affected | not_affected | under_investigation
    justification: str | None
    hunks: list[HunkVerdict] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The verdict as ``kiln research --affected`` prints it."""
        return {
            "status": self.status,
            "justification": self.justification,
            "hunks": [h.as_json() for h in self.hunks],
            "without_counterpart": [
                f"{h.hunk.path} {h.hunk.header}" for h in self.hunks if not h.present
            ],
        }


def _safe_path(raw: str, where: str) -> str:
    path = raw.split("\t", 1)[0].strip()
    if path.startswith(("a/", "b/")):
        path = path[2:]
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\x00" in path or not path:
        raise InputError(f"diff names an unsafe path {path[:100]!r}", location=Location(where))
    return str(pure)


def parse_hunks(diff: str, *, where: str = "the fix's diff") -> list[Hunk]:
    """Every text hunk of a unified diff (binary files and file modes carry none)."""
    hunks: list[Hunk] = []
    path: str | None = None
    lines = diff.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            old = line[4:]
            new = (
                lines[i + 1][4:] if i + 1 < len(lines) and lines[i + 1].startswith("+++ ") else old
            )
            path = None if old.strip() == "/dev/null" else _safe_path(old, where)
            if path is None and new.strip() != "/dev/null":
                path = _safe_path(new, where)
            i += 2
            continue
        match = _HUNK.match(line)
        if match and path is not None:
            before: list[str] = []
            removed = added = 0
            i += 1
            while i < len(lines) and not lines[i].startswith(("@@", "diff ", "--- ")):
                body = lines[i]
                if body.startswith("-"):
                    before.append(body[1:])
                    removed += 1
                elif body.startswith("+"):
                    added += 1
                elif body.startswith(" ") or body == "":
                    before.append(body[1:])
                i += 1
            header = line.split("@@")[1].strip() if "@@" in line else line
            func = match.group(5).strip()
            hunks.append(
                Hunk(path, f"@@ {header} @@ {func}".strip(), tuple(before), removed, added)
            )
            continue
        i += 1
    return hunks


def _normal(lines: tuple[str, ...] | list[str]) -> list[str]:
    return [" ".join(line.split()) for line in lines if line.strip()]


def _contains_in_order(haystack: list[str], needle: list[str]) -> bool:
    """Whether ``needle``'s lines occur in ``haystack`` as one contiguous block."""
    if not needle:
        return True
    first = needle[0]
    n = len(needle)
    for start, line in enumerate(haystack):
        if line == first and haystack[start : start + n] == needle:
            return True
    return False


class _Tree:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise InputError("is not a source tree folder", location=Location(str(root)))
        self.root = root.resolve()
        self._by_name: dict[str, list[str]] | None = None
        self._cache: dict[str, list[str] | None] = {}

    def _index(self) -> dict[str, list[str]]:
        if self._by_name is None:
            index: dict[str, list[str]] = {}
            for count, path in enumerate(self.root.rglob("*")):
                if count > MAX_TREE_FILES:
                    raise InputError(
                        f"holds more than {MAX_TREE_FILES} files", location=Location(str(self.root))
                    )
                if path.is_file() and not path.is_symlink():
                    rel = str(path.relative_to(self.root))
                    if "/.pc/" in f"/{rel}" or rel.startswith(".git/"):
                        continue
                    index.setdefault(path.name, []).append(rel)
            self._by_name = index
        return self._by_name

    def find(self, path: str) -> str | None:
        candidate = self.root / path
        if candidate.is_file() and not candidate.is_symlink():
            return path
        same = self._index().get(PurePosixPath(path).name, [])
        return same[0] if len(same) == 1 else None

    def lines(self, rel: str) -> list[str] | None:
        if rel not in self._cache:
            full = self.root / rel
            try:
                if full.stat().st_size > MAX_FILE_BYTES:
                    self._cache[rel] = None
                else:
                    text = full.read_bytes().decode("utf-8", "replace")
                    self._cache[rel] = _normal(text.splitlines())
            except OSError:
                self._cache[rel] = None
        return self._cache[rel]


def hunk_present(hunk: Hunk, tree: _Tree) -> HunkVerdict:
    """Whether ``hunk``'s pre-image exists in ``tree``."""
    rel = tree.find(hunk.path)
    if rel is None:
        return HunkVerdict(hunk, False, "file not in the tree")
    lines = tree.lines(rel)
    if lines is None:
        return HunkVerdict(hunk, False, "file unreadable or too large", rel)
    needle = _normal(hunk.before)
    if _contains_in_order(lines, needle):
        return HunkVerdict(hunk, True, "pre-image found", rel)
    return HunkVerdict(hunk, False, "the lines the fix changes are not in the file", rel)


def decide(diff: str, tree_root: Path) -> AffectedVerdict:
    """The verdict for ``tree_root`` (a release's unpacked source) against a fix's diff."""
    hunks = parse_hunks(diff)
    if not hunks:
        raise InputError("the fix's diff has no text hunks to look for")
    tree = _Tree(tree_root)
    verdicts = [hunk_present(h, tree) for h in hunks]
    code = [v for v in verdicts if not _DOC_OR_TEST.search(v.hunk.path)] or verdicts
    present = sum(1 for v in code if v.present)
    if present == len(code):
        return AffectedVerdict("affected", None, verdicts)
    if present == 0:
        return AffectedVerdict("not_affected", "vulnerable_code_not_present", verdicts)
    return AffectedVerdict("under_investigation", None, verdicts)
