"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from ._git import Identity
from .dryrun import DryRunForge
from .evidence import (
    AgentStep,
    CheckResult,
    CveRow,
    Evidence,
    PackageChange,
    PatchOrigin,
    SizeChange,
    render_markdown,
)
from .local import RECORDS_REF, LocalGitForge
from .model import ChangeRequest, Forge, PullRequest, branch_name

__all__ = [
    "RECORDS_REF",
    "AgentStep",
    "ChangeRequest",
    "CheckResult",
    "CveRow",
    "DryRunForge",
    "Evidence",
    "Forge",
    "Identity",
    "LocalGitForge",
    "PackageChange",
    "PatchOrigin",
    "PullRequest",
    "SizeChange",
    "branch_name",
    "render_markdown",
]
