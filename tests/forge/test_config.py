"""forge_from_config: the local forge by default, remote forges only when fully configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.forge import ForgejoForge, GitHubForge, LocalGitForge, forge_from_config

from .conftest import change


def test_the_default_is_the_local_forge_with_the_configured_author(catalog: Path) -> None:
    env = {"KILN_FORGE_AUTHOR": "Bot <bot@example.org>", "SOURCE_DATE_EPOCH": "1767225600"}
    forge = forge_from_config(env, repo=catalog)
    assert isinstance(forge, LocalGitForge)
    pr = forge.open_or_update(change())
    assert pr.head is not None


def test_a_remote_forge_needs_repo_url_and_token(catalog: Path) -> None:
    env = {"KILN_FORGE": "github", "KILN_FORGE_REPO": "acme/catalog", "MY_TOKEN": "t0k"}
    with pytest.raises(InputError, match=r"needs a token in \$KILN_FORGE_TOKEN"):
        forge_from_config(env, repo=catalog)
    forge = forge_from_config({**env, "KILN_FORGE_TOKEN_VAR": "MY_TOKEN"}, repo=catalog)
    assert isinstance(forge, GitHubForge)
    assert forge.settings.api_url == "https://api.github.com"
    with pytest.raises(InputError, match="needs KILN_FORGE_URL"):
        forge_from_config({**env, "KILN_FORGE": "forgejo", "KILN_FORGE_TOKEN": "t"}, repo=catalog)
    forgejo = forge_from_config(
        {
            **env,
            "KILN_FORGE": "forgejo",
            "KILN_FORGE_TOKEN": "t",
            "KILN_FORGE_URL": "http://127.0.0.1:3000/api/v1",
        },
        repo=catalog,
    )
    assert isinstance(forgejo, ForgejoForge)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"KILN_FORGE": "bitbucket"}, "is not a forge kiln knows"),
        ({"KILN_FORGE_URL": "http://forge.invalid/api"}, "token in clear text"),
        ({"KILN_FORGE_URL": "https://u:p@forge.invalid/api"}, "holds credentials"),
        ({"KILN_FORGE_URL": "ftp://forge.invalid"}, "not an http"),
        ({"KILN_FORGE_REPO": "catalog"}, "is not owner/name"),
        ({"KILN_FORGE_REPO": "acme/../x"}, "is not owner/name"),
        ({"KILN_FORGE_AUTHOR": "no email"}, "is not 'Name <email>'"),
        ({"SOURCE_DATE_EPOCH": "soon"}, "SOURCE_DATE_EPOCH"),
    ],
)
def test_bad_settings_are_input_errors(catalog: Path, extra: dict[str, str], message: str) -> None:
    env = {
        "KILN_FORGE": "github",
        "KILN_FORGE_REPO": "acme/catalog",
        "KILN_FORGE_TOKEN": "secret-value",
    }
    with pytest.raises(InputError, match=message) as caught:
        forge_from_config({**env, **extra}, repo=catalog)
    assert "secret-value" not in caught.value.diagnostics()
