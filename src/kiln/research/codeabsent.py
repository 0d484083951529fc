"""VEX ``vulnerable_code_not_present``: the code a fix changes is nowhere in the image's source.

Remedy (c) of the remediation loop, second justification (the first,
``component_not_present``, is ``kiln.pipeline.vexevidence``). ``kiln.research.affected``
decides "affected or not" for a tree by looking for each hunk's pre-image; on a CVE that
only Debian unstable fixes, a pre-image that is not found mostly means the code *moved*
(a refactoring, a renamed file), not that the vulnerability is gone, and a false
``not_affected`` hides a real vulnerability. So the claim here is narrower and every
rule must hold (``decide_absent``):

1. The fix has at least one hunk outside tests and documentation
   (``kiln.pipeline.vexevidence.test_or_doc``), every path safe.
2. For each such hunk, the file it changes does not exist in the tree: not at its path,
   and no file anywhere in the tree has its file name (a moved file keeps its name more
   often than not; an ambiguous name counts as present).
3. For each such hunk, the lines it *removes* (for a hunk that only adds: its context
   lines) that are distinctive (at least 16 characters once whitespace is collapsed) are
   at least one, and none of them occurs in any file of the tree (whitespace-collapsed,
   files up to 16 MiB): the vulnerable lines are not anywhere else under another name.

The tree is the image's own Debian source, at the version the lock names, fetched
through kiln's signed source path (``kiln.pipeline.source.SourceBuilder``: Sources
entry, every file checked against its sha256) and unpacked by ``dpkg-source -x`` in the
sandbox (Debian's patches applied). The evidence: per hunk, the file looked for and the
lines searched, the source version and the number of files searched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from kiln.errors import InputError, Location
from kiln.pipeline.vexevidence import test_or_doc
from kiln.research.affected import Hunk, parse_hunks

if TYPE_CHECKING:
    from kiln.pipeline import ArchiveAccess

JUSTIFICATION = "vulnerable_code_not_present"
MIN_LINE = 16  # characters of a whitespace-collapsed line that count as distinctive
MAX_FILE = 16 << 20
MAX_FILES = 200_000


def _normal(line: str) -> str:
    return " ".join(line.split())


@dataclass(frozen=True)
class HunkAbsence:
    """One code hunk of the fix and what was looked for in the tree."""

    path: str
    header: str
    lines: int  # distinctive lines searched for
    found: str = ""  # why the hunk's code may be there (empty: absent)

    def line(self) -> str:
        """The evidence line for this hunk."""
        what = f"{self.path} {self.header}"
        if self.found:
            return f"{what}: {self.found}"
        return (
            f"{what}: no file {PurePosixPath(self.path).name!r} in the source, none of its "
            f"{self.lines} distinctive removed/context lines in any file"
        )


@dataclass(frozen=True)
class CodeVerdict:
    """The decision for one (image, source, CVE): a statement or none, with the evidence."""

    image: str
    source: str
    cve: str
    fix_origin: str
    statement: bool
    reason: str
    tree: str  # "lz4 1.10.0-4 (dpkg-source -x, Debian patches applied)"
    files_searched: int = 0
    hunks: tuple[HunkAbsence, ...] = ()
    installed: tuple[str, ...] = ()  # the source's binaries the image installs

    @property
    def justification(self) -> str | None:
        """OpenVEX's justification when there is a statement."""
        return JUSTIFICATION if self.statement else None

    def impact_statement(self) -> str:
        """One paragraph a VEX reader understands without the evidence list."""
        files = sorted({h.path for h in self.hunks})
        return (
            f"The fix for {self.cve} in Debian source {self.source} ({self.fix_origin}) "
            f"changes {', '.join(files)}; the image's source, {self.tree}, has no such "
            "file and none of the lines the fix changes."
        )

    def evidence(self) -> list[str]:
        """Every evidence line: each hunk, the tree, how much was searched."""
        return [
            *(h.line() for h in self.hunks),
            f"source searched: {self.tree}, {self.files_searched} files",
        ]


def _distinctive(hunk: Hunk, removed: Sequence[str]) -> list[str]:
    picked = [_normal(line) for line in removed] or [_normal(line) for line in hunk.before]
    return sorted({line for line in picked if len(line) >= MIN_LINE})


def _removed_lines(diff: str) -> dict[tuple[str, str], list[str]]:
    """(path, hunk header) -> the lines the hunk removes (``parse_hunks`` keeps the
    pre-image only, context and removed lines together)."""
    found: dict[tuple[str, str], list[str]] = {}
    path = ""
    header = ""
    for line in diff.splitlines():
        if line.startswith("+++ "):
            continue
        if line.startswith("--- "):
            raw = line[4:].split("\t", 1)[0].strip()
            path = raw[2:] if raw.startswith(("a/", "b/")) else raw
        elif line.startswith("@@"):
            parts = line.split("@@")
            header = f"@@ {parts[1].strip()} @@ {parts[2].strip() if len(parts) > 2 else ''}"
            header = header.strip()
            found.setdefault((path, header), [])
        elif line.startswith("-") and (path, header) in found:
            found[(path, header)].append(line[1:])
    return found


def _walk(tree: Path) -> tuple[set[str], list[Path]]:
    names: set[str] = set()
    files: list[Path] = []
    for count, (folder, dirs, entries) in enumerate(os.walk(tree)):
        dirs[:] = [d for d in dirs if d not in (".pc", ".git")]
        if count > MAX_FILES or len(files) > MAX_FILES:
            raise InputError(f"holds more than {MAX_FILES} files", location=Location(str(tree)))
        for entry in entries:
            path = Path(folder) / entry
            names.add(entry)
            if not path.is_symlink() and path.is_file():
                files.append(path)
    return names, files


def decide_absent(
    *,
    image: str,
    source: str,
    cve: str,
    fix_origin: str,
    diffs: Sequence[tuple[str, bytes]],
    tree: Path,
    tree_name: str,
    installed: Sequence[str] = (),
) -> CodeVerdict:
    """Does ``vulnerable_code_not_present`` hold for the fix ``diffs`` in ``tree``? (the
    module docstring's rules)."""
    hunks: list[tuple[Hunk, list[str]]] = []
    for name, raw in diffs:
        text = raw.decode("utf-8", "replace")
        removals = _removed_lines(text)
        for hunk in parse_hunks(text, where=name):
            if not test_or_doc(hunk.path):
                hunks.append((hunk, removals.get((hunk.path, hunk.header), [])))
    if not hunks:
        return CodeVerdict(
            image, source, cve, fix_origin, statement=False, tree=tree_name,
            installed=tuple(installed),
            reason="the fix changes no shipped code (only tests or documentation)",
        )  # fmt: skip
    names, files = _walk(tree)
    wanted: dict[str, list[int]] = {}
    checked: list[HunkAbsence] = []
    for index, (hunk, removed) in enumerate(hunks):
        lines = _distinctive(hunk, removed)
        file_name = PurePosixPath(hunk.path).name
        if (tree / hunk.path).exists() or file_name in names:
            found = f"the source has a file named {file_name!r} (rule 2)"
        elif not lines:
            found = f"no line of {MIN_LINE}+ characters to look for (rule 3)"
        else:
            found = ""
            for line in lines:
                wanted.setdefault(line, []).append(index)
        checked.append(HunkAbsence(hunk.path, hunk.header, len(lines), found))
    seen_in: dict[int, str] = {}
    if wanted:
        for path in files:
            try:
                if path.stat().st_size > MAX_FILE:
                    continue
                text = path.read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            for line in {_normal(x) for x in text.splitlines()} & wanted.keys():
                for index in wanted[line]:
                    seen_in.setdefault(index, str(path.relative_to(tree)))
    checked = [
        HunkAbsence(c.path, c.header, c.lines, f"its line is in {seen_in[i]} (rule 3)")
        if i in seen_in and not c.found
        else c
        for i, c in enumerate(checked)
    ]
    present = [c for c in checked if c.found]
    reason = (
        f"{present[0].path} {present[0].header}: {present[0].found}"
        if present
        else "no file the fix changes is in the source, nor any of the lines it changes"
    )
    return CodeVerdict(
        image, source, cve, fix_origin, statement=not present, reason=reason, tree=tree_name,
        files_searched=len(files), hunks=tuple(checked), installed=tuple(installed),
    )  # fmt: skip


def unpacked_source(
    source: str, version: str, work: Path, archive: ArchiveAccess, *, distro: str
) -> tuple[Path, str]:
    """``source`` at ``version`` through kiln's signed source path, unpacked by
    ``dpkg-source -x`` in the sandbox under ``work``: the tree and how to name it."""
    import shutil  # noqa: PLC0415

    from kiln.debian import get_distro  # noqa: PLC0415
    from kiln.pipeline.source import SourceBuilder  # noqa: PLC0415
    from kiln.recipes.build import unpack_source  # noqa: PLC0415

    fetched, _ = SourceBuilder(archive).fetch(get_distro(distro), source, version=version)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tree = unpack_source(fetched, Path("/"), work, log=work.with_suffix(".log"))
    dsc = fetched.package.dsc
    digest = f", .dsc sha256 {dsc.sha256[:16]}" if dsc is not None else ""
    return tree, f"{source} {version} (dpkg-source -x, Debian's patches applied{digest})"
