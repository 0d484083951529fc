"""Swap a Dockerfile's FROM lines (and nothing else) from official images to kiln's.

``kiln.migrate`` decides each FROM (which kiln image, which variant, which tag). When it
leaves a FROM unmapped that a stand-in declares a ``kiln`` image for (an image whose
spec does not list the official name in ``compatibility.replaces`` yet), the stand-in's
mapping is used and the swap says so, so the report shows where migrate fell short.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.compat.model import StandinCatalog
from kiln.migrate import BuildContext, Catalog, Rewrite, migrate, parse_dockerfile

KILN_PREFIX = "localhost/kiln"


@dataclass(frozen=True)
class FromSwap:
    """One FROM line: what it named, what it names now, and why."""

    line: int
    original: str
    replacement: str | None  # None: left as is (a stage name, scratch)
    image: str | None  # kiln image name (``python``)
    variant: str | None  # ``runtime`` or ``dev``
    how: str  # "migrate" / "standins.yaml (migrate: <reason>)" / why it was kept

    @property
    def layout(self) -> str | None:
        """The kiln OCI layout directory name: ``python`` or ``python-dev``."""
        if self.image is None or self.variant is None:
            return None
        return self.image if self.variant == "runtime" else f"{self.image}-{self.variant}"

    def describe(self) -> str:
        if self.replacement is None:
            return f"{self.original} (kept: {self.how})"
        return f"{self.original} -> {self.replacement} ({self.how})"


@dataclass(frozen=True)
class SwappedDockerfile:
    text: str
    swaps: tuple[FromSwap, ...]

    @property
    def unmapped(self) -> tuple[FromSwap, ...]:
        return tuple(s for s in self.swaps if s.replacement is None and s.how != "stage")


def official_refs(text: str, path: str = "Dockerfile") -> tuple[str, ...]:
    """The images the FROM lines name, stage references left out, in order."""
    parsed = parse_dockerfile(text, path)
    stages: set[str] = set()
    refs: list[str] = []
    for stage in parsed.stages:
        image = stage.origin.image
        if image.lower() not in stages and image.lower() != "scratch" and image not in refs:
            refs.append(image)
        if stage.origin.stage_name:
            stages.add(stage.origin.stage_name.lower())
    return tuple(refs)


def swap_from_lines(
    text: str,
    catalog: Catalog,
    standins: StandinCatalog,
    *,
    prefix: str = KILN_PREFIX,
    path: str = "Dockerfile",
    context: BuildContext | None = None,
) -> SwappedDockerfile:
    """The Dockerfile with its FROM lines pointing at kiln images under ``prefix``.

    ``context`` is the app's build context (migrate reads the nginx configs it copies).
    """
    migration = migrate(text, catalog, prefix, path=path, context=context)
    parsed = parse_dockerfile(text, path)
    stage_names: set[str] = set()
    swaps: list[FromSwap] = []
    edits: list[tuple[int, int, str]] = []
    for stage, outcome in zip(parsed.stages, migration.outcomes, strict=True):
        origin = stage.origin
        if isinstance(outcome, Rewrite):
            swaps.append(
                FromSwap(
                    origin.line,
                    origin.image,
                    outcome.replacement,
                    outcome.image,
                    outcome.variant,
                    "migrate",
                )
            )
            if origin.span is not None:
                edits.append((origin.span.start, origin.span.end, outcome.replacement))
        elif origin.image.lower() in stage_names:
            swaps.append(FromSwap(origin.line, origin.image, None, None, None, "stage"))
        else:
            reason = outcome.reason  # Kept or Unmapped
            standin = standins.for_ref(origin.image)
            if standin is not None and origin.span is not None:
                variant = "dev" if standin.kiln_dev else "runtime"
                tag = "latest-dev" if standin.kiln_dev else "latest"
                replacement = f"{prefix}/{standin.kiln_image}:{tag}"
                edits.append((origin.span.start, origin.span.end, replacement))
                swaps.append(
                    FromSwap(
                        origin.line,
                        origin.image,
                        replacement,
                        standin.kiln_image,
                        variant,
                        f"standins.yaml; migrate: {reason}",
                    )
                )
            else:
                swaps.append(FromSwap(origin.line, origin.image, None, None, None, reason))
        if origin.stage_name:
            stage_names.add(origin.stage_name.lower())
    swapped = text
    for start, end, replacement in sorted(edits, reverse=True):
        swapped = swapped[:start] + replacement + swapped[end:]
    return SwappedDockerfile(swapped, tuple(swaps))
