"""The drop-in compatibility suite: real Dockerfiles, before (official-image stand-ins)
and after (kiln images, FROM lines swapped), built with buildah, run with podman, compared.

Declarations: ``compat/<app>/compat.yaml`` and ``compat/standins.yaml`` (``model``).
Entry point: ``run_suite`` (``runner``); rendering: ``render``/``to_json`` (``report``).
"""

from kiln.compat.containers import CommandResult, Store, check_tools
from kiln.compat.model import (
    App,
    AppDeclaration,
    ExpectedOutput,
    HttpRequest,
    StandinCatalog,
    StandinSpec,
    load_app,
    load_apps,
    load_standins,
)
from kiln.compat.probe import Observation
from kiln.compat.report import render, table, to_json
from kiln.compat.runner import AppResult, Side, SuiteConfig, SuiteResult, run_suite
from kiln.compat.standins import StandinBuild, ensure_standin, standin_key
from kiln.compat.swap import FromSwap, SwappedDockerfile, official_refs, swap_from_lines

__all__ = [
    "App",
    "AppDeclaration",
    "AppResult",
    "CommandResult",
    "ExpectedOutput",
    "FromSwap",
    "HttpRequest",
    "Observation",
    "Side",
    "StandinBuild",
    "StandinCatalog",
    "StandinSpec",
    "Store",
    "SuiteConfig",
    "SuiteResult",
    "SwappedDockerfile",
    "check_tools",
    "ensure_standin",
    "load_app",
    "load_apps",
    "load_standins",
    "official_refs",
    "render",
    "run_suite",
    "standin_key",
    "swap_from_lines",
    "table",
    "to_json",
]
