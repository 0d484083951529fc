"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from ._git import Identity
from .config import forge_from_config
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
from .remote import ForgejoForge, GitHubForge, GitLabForge, RemoteForge, RemoteSettings

__all__ = [
    "RECORDS_REF",
    "AgentStep",
    "ChangeRequest",
    "CheckResult",
    "CveRow",
    "DryRunForge",
    "Evidence",
    "Forge",
    "ForgejoForge",
    "GitHubForge",
    "GitLabForge",
    "Identity",
    "LocalGitForge",
    "PackageChange",
    "PatchOrigin",
    "PullRequest",
    "RemoteForge",
    "RemoteSettings",
    "SizeChange",
    "branch_name",
    "forge_from_config",
    "render_markdown",
]
