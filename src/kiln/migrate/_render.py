"""What ``kiln migrate`` and ``kiln spec notes`` print: a unified diff, explanations, notes.

The notes table is also what the README lists between its ``kiln spec notes`` markers;
``splice_readme`` replaces that block so the README cannot drift from the specs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import assert_never

from kiln.errors import InputError
from kiln.migrate._catalog import Catalog, CatalogImage
from kiln.migrate._plan import Kept, Migration, Rewrite, Unmapped

README_BEGIN = "<!-- BEGIN kiln spec notes --markdown (generated: do not edit) -->"
README_END = "<!-- END kiln spec notes -->"


def unified_diff(migration: Migration) -> str:
    """``diff -u`` of the original and migrated text (empty when nothing changed)."""
    if not migration.changed:
        return ""
    old = _diff_lines(migration.original)
    new = _diff_lines(migration.migrated)
    name = migration.path
    before, after = (name, name) if name.startswith("/") else (f"a/{name}", f"b/{name}")
    return "".join(difflib.unified_diff(old, new, before, after))


def _diff_lines(text: str) -> list[str]:
    # only \n ends a Dockerfile line (str.splitlines would also split on \v, \f, ...)
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1] + "\n\\ No newline at end of file\n")
    return lines


def explain(migration: Migration, catalog: Catalog) -> Iterator[str]:
    """One paragraph per FROM (``file:line: ...``), then each used image's notes once."""
    used: list[str] = []
    for outcome in migration.outcomes:
        where = f"{migration.path}:{outcome.line}"
        match outcome:
            case Rewrite():
                yield f"{where}: {outcome.original} -> {outcome.replacement}"
                yield f"  {outcome.stage} {outcome.why}"
                for remark in outcome.remarks:
                    yield f"  note: {remark}"
                if outcome.image not in used:
                    used.append(outcome.image)
            case Kept():
                yield f"{where}: kept {outcome.original}: {outcome.reason}"
            case Unmapped():
                yield f"{where}: left untouched {outcome.original}: {outcome.reason}"
            case _:
                assert_never(outcome)
    for name in used:
        image = catalog.get(name)
        if image.notes:
            yield f"kiln's {name} differs from the images it replaces ({image.source}):"
            yield from (f"  - {note}" for note in image.notes)


def notes_text(images: tuple[CatalogImage, ...]) -> Iterator[str]:
    """Plain text: each image, what it replaces and how it differs."""
    for image in images:
        yield f"{image.name} ({image.source})"
        replaces = ", ".join(image.replaces) if image.replaces else "(nothing declared)"
        yield f"  replaces: {replaces}"
        for note in image.notes:
            yield f"  - {note}"


def notes_markdown(images: tuple[CatalogImage, ...]) -> str:
    """A Markdown table: image, the official images it replaces, what differs."""
    rows = [
        "| kiln image | replaces | differences from the images it replaces |",
        "| --- | --- | --- |",
    ]
    for image in images:
        replaces = "<br>".join(f"`{_cell(r)}`" for r in image.replaces) or "–"
        notes = "<br>".join(_cell(n) for n in image.notes) or "–"
        rows.append(f"| {image.name} | {replaces} | {notes} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def splice_readme(readme: str, table: str, *, path: str = "README.md") -> str:
    """Replace the block between the README's notes markers with ``table``."""
    begin = readme.find(README_BEGIN)
    end = readme.find(README_END)
    if begin < 0 or end < begin:
        raise InputError(
            f"{path} has no notes block: add the lines {README_BEGIN!r} and {README_END!r}"
        )
    head = readme[: begin + len(README_BEGIN)]
    return head + "\n" + table + readme[end:]
