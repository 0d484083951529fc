"""Production wiring: the real steps over a checkout, its forge, kiln's advisory store.

``production_steps(root)`` is what ``kiln factory worker`` and ``run`` register: the
catalog steps, the forge ``kiln.forge.forge_from_config`` names (the local git forge
unless ``KILN_FORGE`` says otherwise; ``--dry-run`` answers without writing through
``DryRunForge``) and the advisory events appended to ``kiln.vuln.advisories``'s store
(``KILN_DB``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import InputError
from kiln.factory.catalog import CatalogSteps, EventSink
from kiln.factory.server import state_dir

if TYPE_CHECKING:
    from kiln.forge import Forge

# ruff: noqa: PLC0415


def checkout_root(start: Path) -> Path:
    """The git checkout ``start`` is in (the catalog the factory works on)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InputError(
            f"{start} is not inside a git checkout: the factory works on the catalog "
            "repository it is run in",
            hint="run it in a clone of the catalog (images/*.yaml)",
        ) from exc
    return Path(out)


def advisory_sink(url: str | None = None) -> EventSink:
    """Append the factory's events to the advisory store at ``url`` (None: ``KILN_DB``)."""
    from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind

    store = AdvisoryStore.open(url)

    def sink(image: str, vuln_id: str, kind: str, data: Mapping[str, str]) -> None:
        payload: dict[str, Any] = dict(data)
        if "attempt" in payload:
            payload["attempt"] = int(payload["attempt"])
        package = payload.pop("package", None) or None  # a determination's binary
        store.append(AdvisoryEvent(image, vuln_id, EventKind(kind), package, data=payload))

    return sink


def production_forge(root: Path, environ: Mapping[str, str] = os.environ) -> Forge:
    """The forge the environment configures for the checkout at ``root``."""
    from kiln.forge import forge_from_config

    return forge_from_config(environ, repo=root)


def production_steps(
    root: Path,
    *,
    db_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
    compat: bool | None = None,
) -> CatalogSteps:
    """The real steps for the checkout at ``root`` (``compat`` None: as
    ``$KILN_FACTORY_COMPAT`` says, off by default)."""
    from kiln.factory.agent import agent_from_env
    from kiln.factory.compatcheck import compat_enabled

    agent = agent_from_env(environ, state=state_dir(root) / "factory")
    return CatalogSteps(
        root,
        forge=production_forge(root, environ),
        events=advisory_sink(db_url),
        db_url=db_url,
        agent=agent,
        compat=compat_enabled(environ) if compat is None else compat,
    )
