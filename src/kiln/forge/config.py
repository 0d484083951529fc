"""Which forge kiln talks to, from the environment (``forge_from_config``).

``KILN_FORGE`` is ``local`` (the default: branches and records in the catalog repository,
nothing leaves the machine), ``github``, ``gitlab`` or ``forgejo``. A remote forge needs
``KILN_FORGE_REPO`` (``owner/name``; GitLab: the project path), its API URL in
``KILN_FORGE_URL`` (GitHub defaults to its public API; https only, but for a loopback
host) and a token in the variable ``KILN_FORGE_TOKEN_VAR`` names (default
``KILN_FORGE_TOKEN``). ``KILN_FORGE_REMOTE`` is the git remote branches are pushed to
(default ``origin``); ``KILN_FORGE_AUTOMERGE=1`` merges bumps whose checks all pass.
``KILN_FORGE_AUTHOR`` (``Name <email>``) signs the commits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import httpx

from kiln.errors import InputError
from kiln.forge._git import Git, Identity
from kiln.forge.local import LocalGitForge, default_clock
from kiln.forge.model import Forge
from kiln.forge.remote import ForgejoForge, GitHubForge, GitLabForge, RemoteForge, RemoteSettings
from kiln.net.chat import check_token_url

_REMOTES: dict[str, type[RemoteForge]] = {
    "github": GitHubForge,
    "gitlab": GitLabForge,
    "forgejo": ForgejoForge,
}
_DEFAULT_URL = {"github": "https://api.github.com"}


def forge_from_config(
    environ: Mapping[str, str] = os.environ,
    *,
    repo: Path,
    client: httpx.Client | None = None,
) -> Forge:
    """The forge the environment configures, working on the git repository ``repo``."""
    kind = environ.get("KILN_FORGE", "").strip().lower() or "local"
    author = environ.get("KILN_FORGE_AUTHOR", "").strip()
    identity = Identity.parse(author, where="KILN_FORGE_AUTHOR") if author else Identity()
    clock = default_clock(environ)
    if kind == "local":
        return LocalGitForge(repo, identity=identity, clock=clock)
    if kind not in _REMOTES:
        raise InputError(
            f"KILN_FORGE={kind!r} is not a forge kiln knows",
            hint="use local, github, gitlab or forgejo",
        )
    url = environ.get("KILN_FORGE_URL", "").strip() or _DEFAULT_URL.get(kind, "")
    if not url:
        raise InputError(f"KILN_FORGE={kind} needs KILN_FORGE_URL, the forge's API URL")
    check_token_url(url, variable="KILN_FORGE_URL")
    name = environ.get("KILN_FORGE_REPO", "").strip()
    segments = name.split("/")
    if len(segments) < 2 or not all(s and s not in (".", "..") for s in segments):
        raise InputError(f"KILN_FORGE_REPO={name!r} is not owner/name")
    token_var = environ.get("KILN_FORGE_TOKEN_VAR", "").strip() or "KILN_FORGE_TOKEN"
    token = environ.get(token_var, "").strip()
    if not token:
        raise InputError(f"KILN_FORGE={kind} needs a token in ${token_var}")
    settings = RemoteSettings(
        api_url=url,
        repo=name,
        token=token,
        remote=environ.get("KILN_FORGE_REMOTE", "").strip() or "origin",
        automerge=environ.get("KILN_FORGE_AUTOMERGE", "") == "1",
    )
    return _REMOTES[kind](settings, git=Git(repo), identity=identity, clock=clock, client=client)
