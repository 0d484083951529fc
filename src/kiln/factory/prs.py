"""A proposal as a pull request: ``kiln.forge``'s ``ChangeRequest`` with its ``Evidence``.

The forge guarantees one pull request per (image, kind, generation) and updates the
open one for a new generation; ``open_change`` only maps the factory's plain data onto
the forge's types. A dry run asks nothing of any forge: it returns the pull request the
proposal would be (its branch and title) and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from kiln.errors import InputError
from kiln.factory.model import Proposal, PrResult

if TYPE_CHECKING:
    from kiln.forge import ChangeRequest, Forge
    from kiln.forge.evidence import ChangeKind, CheckStatus, Evidence

# ruff: noqa: PLC0415


def evidence_of(proposal: Proposal) -> Evidence:
    """The proposal's evidence in the forge's terms."""
    from kiln.forge.evidence import CheckResult, CveRow, Evidence, PackageChange, SizeChange

    def rows(entries: list[object]) -> tuple[CveRow, ...]:
        return tuple(CveRow(**vars(e)) for e in entries)

    def checks(entries: list[object]) -> tuple[CheckResult, ...]:
        return tuple(
            CheckResult(e.name, cast("CheckStatus", e.status), e.detail)  # type: ignore[attr-defined]
            for e in entries
        )

    return Evidence(
        image=proposal.image,
        kind=cast("ChangeKind", proposal.kind),
        generation=proposal.generation,
        cves_before=rows(list(proposal.cves_before)),
        cves_after=rows(list(proposal.cves_after)),
        packages=tuple(PackageChange(p.name, p.before, p.after) for p in proposal.packages),
        sizes=tuple(SizeChange(s.platform, s.before, s.after) for s in proposal.sizes),
        tests=checks(list(proposal.tests)),
        compat=checks(list(proposal.compat)),
        provenance_digest=proposal.digest or None,
        notes=tuple(proposal.notes),
    )


def change_of(proposal: Proposal, base: str = "main") -> ChangeRequest:
    """The forge's change request for ``proposal``."""
    from kiln.forge import ChangeRequest

    files = {path: None if text is None else text.encode() for path, text in proposal.files.items()}
    return ChangeRequest(
        image=proposal.image,
        kind=cast("ChangeKind", proposal.kind),
        generation=proposal.generation,
        title=proposal.title,
        evidence=evidence_of(proposal),
        files=files,
        base=base,
    )


def open_change(forge: Forge | None, root: Path, proposal: Proposal, *, dry_run: bool) -> PrResult:
    """Open (or find, or update) the proposal's pull request; in a dry run, describe it."""
    change = change_of(proposal)
    if dry_run:
        return PrResult(
            "(dry run)", "", change.branch, created=True, dry_run=True, title=change.title
        )
    if forge is None:
        raise InputError(f"{root}: no forge configured to open pull requests in")
    before = {(p.image, p.kind, p.generation) for p in forge.list()}
    pr = forge.open_or_update(change)
    created = (proposal.image, proposal.kind, proposal.generation) not in before
    return PrResult(str(pr.id), pr.url or "", pr.branch, created=created, title=pr.title)
