"""compat inside a bump: the compat apps that use the bumped image, run on its new build.

Issue 16's bump is "build → kiln test → compat where the image is used there". The
compatibility suite (``kiln.compat``, ``compat/`` in the checkout) declares apps whose
Dockerfiles name official images; ``kiln.compat.swap`` maps each FROM line to a kiln
image. After the bump's own tests pass, the apps whose every swapped FROM line is the
bumped image (either variant) are built and run with ``kiln.compat.run_suite`` on the
layouts the bump just built (``SuiteConfig.layouts``: nothing is rebuilt, the stand-ins
come from the suite's cache). An app that also needs another kiln image is not run (the
bump did not build that image) and says so as a ``skipped`` check.

Off by default: one app takes minutes with buildah on vfs (docs/factory.md has the
measured time). ``kiln factory run --compat`` or ``KILN_FACTORY_COMPAT=1`` (for
``kiln factory worker``) turns it on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.compat import App, SuiteConfig, load_apps, load_standins, run_suite, swap_from_lines
from kiln.compat.model import STANDINS
from kiln.errors import InputError, PolicyError
from kiln.forge.evidence import CheckResult
from kiln.migrate import Catalog, DirectoryContext, load_catalog

ENV_COMPAT = "KILN_FACTORY_COMPAT"
SUITE_DIR = "compat"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def compat_enabled(environ: Mapping[str, str]) -> bool:
    """Whether ``$KILN_FACTORY_COMPAT`` turns compat on (an input error for garbage)."""
    value = environ.get(ENV_COMPAT, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(
        f"{ENV_COMPAT}={environ.get(ENV_COMPAT)!r}: expected 1 or 0 (true/false, yes/no)"
    )


@dataclass(frozen=True)
class CompatPlan:
    """The apps to run for one image, and the ones that use it but cannot run here."""

    apps: tuple[App, ...]
    skipped: tuple[CheckResult, ...]


def apps_using(image: str, suite: Path, catalog: Catalog) -> CompatPlan:
    """The apps of ``suite`` whose swapped FROM lines name kiln's ``image`` (only it)."""
    standins = load_standins(suite / STANDINS)
    apps: list[App] = []
    skipped: list[CheckResult] = []
    for app in load_apps(suite):
        swapped = swap_from_lines(
            app.dockerfile.read_text(encoding="utf-8"),
            catalog,
            standins,
            path=str(app.dockerfile),
            context=DirectoryContext(app.directory),
        )
        images = {s.image for s in swapped.swaps if s.image}
        if image not in images:
            continue
        others = sorted(images - {image})
        if others:
            skipped.append(
                CheckResult(
                    app.name,
                    "skipped",
                    f"also needs kiln {', '.join(others)}, which this bump did not build",
                )
            )
        else:
            apps.append(app)
    return CompatPlan(tuple(apps), tuple(skipped))


def run_compat(
    image: str,
    layouts: Path,
    root: Path,
    *,
    work: Path,
    arch: str,
    progress: Callable[[str], None] = lambda _: None,
) -> list[CheckResult]:
    """Run the compat apps of the checkout at ``root`` that use ``image`` on the layouts
    in ``layouts`` (``<image>``, ``<image>-dev``): one check per app. A failing app is a
    ``PolicyError`` naming it (like a failing test: not retried, dead-lettered)."""
    suite = root / SUITE_DIR
    if not suite.is_dir():
        return []  # a catalog without a compat suite: nothing uses the image there
    from kiln.debian.sources import discover_mirrors  # noqa: PLC0415

    catalog = load_catalog(root / "images")
    plan = apps_using(image, suite, catalog)
    if not plan.apps:
        return list(plan.skipped)
    config = SuiteConfig(
        work=work, images_dir=root / "images", layouts=layouts, arch=arch, scan=False
    )
    result = run_suite(
        plan.apps,
        load_standins(suite / STANDINS),
        catalog,
        discover_mirrors(),
        config,
        progress=progress,
    )
    checks = [
        CheckResult(
            app.name,
            "pass" if app.ok else "fail",
            _detail(app.after.problem, app.differences, app.before.problem)
            + f" (on kiln: built in {app.after.build_seconds:.0f} s"
            + (", cached" if app.after.build_cached else "")
            + ")",
        )
        for app in result.apps
    ]
    failing = [c for c in checks if c.status == "fail"]
    if failing or result.problems:
        names = ", ".join(c.name for c in failing) or "the suite"
        raise PolicyError(
            f"{image}: compat app {names} fails on the bumped image",
            details=[f"{c.name}: {c.detail}" for c in failing]
            + [p.splitlines()[0] for p in result.problems],
            hint=f"logs: {config.logs}",
        )
    return checks + list(plan.skipped)


def _detail(after: str, differences: tuple[str, ...], before: str) -> str:
    if after:
        return f"on kiln: {after}"
    if differences:
        return "differs: " + "; ".join(differences)[:280]
    if before:
        return f"on the stand-in: {before}"
    return "same behaviour before and after"
