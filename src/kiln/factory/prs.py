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
    from kiln.forge.evidence import ChangeKind, Evidence

# ruff: noqa: PLC0415


def evidence_of(proposal: Proposal) -> Evidence:
    """The proposal's evidence in the forge's terms."""
    from kiln.forge.evidence import Evidence

    return Evidence(
        image=proposal.image,
        kind=cast("ChangeKind", proposal.kind),
        generation=proposal.generation,
        cves_before=tuple(proposal.cves_before),
        cves_after=tuple(proposal.cves_after),
        packages=tuple(proposal.packages),
        sizes=tuple(proposal.sizes),
        tests=tuple(proposal.tests),
        compat=tuple(proposal.compat),
        provenance_digest=proposal.digest or None,
        patches=tuple(proposal.patches),
        agent=tuple(proposal.agent),
        notes=tuple(proposal.notes),
    )


def change_of(proposal: Proposal, base: str = "main") -> ChangeRequest:
    """The forge's change request for ``proposal``."""
    from kiln.forge import ChangeRequest

    try:
        files = proposal.decoded()
    except ValueError as exc:
        raise InputError(
            f"proposal {proposal.kind}/{proposal.image}: a file is not base64"
        ) from exc
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
    """Open (or find, or update) the proposal's pull request; in a dry run, say what the
    forge would answer (``DryRunForge`` over the real one: it reads, never writes)."""
    from kiln.forge import DryRunForge

    if forge is None:
        raise InputError(f"{root}: no forge configured to open pull requests in")
    change = change_of(proposal)
    known = {(p.image, p.kind, p.generation) for p in forge.list()}
    created = (proposal.image, proposal.kind, proposal.generation) not in known
    pr = (DryRunForge(forge) if dry_run else forge).open_or_update(change)
    pr_id = str(pr.id) if pr.id else "(new)"
    return PrResult(pr_id, pr.url or "", pr.branch, created, dry_run, pr.title)
