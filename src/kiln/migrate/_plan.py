"""Map a Dockerfile's FROM lines to kiln images: pure, text in and a ``Migration`` out.

Which variant a stage gets:

* a build stage (any stage but the last) gets ``-dev``: it exists to RUN things;
* the final stage gets the runtime variant when nothing in it needs a shell, a package
  manager or an account the runtime lacks: only COPY/ADD/ENV/ARG/LABEL/EXPOSE/USER/
  WORKDIR/VOLUME/STOPSIGNAL, CMD/ENTRYPOINT/HEALTHCHECK in exec (JSON) form, no USER or
  ``--chown`` naming an unknown account, and no CMD that the runtime's ENTRYPOINT would
  take as arguments (unless the replaced image is a distroless one, whose ENTRYPOINT
  works the same way), and no nginx config copied from the build context into
  /etc/nginx that listens on a port below 1024 (the runtime runs as nonroot and cannot
  bind it; ``kiln.migrate._context``); otherwise ``-dev``.

Tags keep the version series: a tag that starts with a version gets the catalog's
``major.minor`` (``python:3.13-slim`` -> ``python:3.13-dev``); any other tag (``latest``,
``slim``, ``nonroot``), or a version the image is not published under, gets ``latest``.
A digest names one upstream manifest and cannot carry over: it is dropped and the
explanation says so (re-pin to the kiln image's digest).

Left untouched, each with its reason: ARG-driven images (with the kiln image for the
ARG's default when it maps), ``--platform``, images no catalog spec replaces, tags no
pattern covers, digest-only references, malformed FROMs. ``FROM scratch``, FROMs naming
an earlier stage and images already under the prefix are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kiln.errors import InputError
from kiln.migrate._catalog import Catalog, CatalogImage, CatalogMatch
from kiln.migrate._context import (
    UNPRIVILEGED_PORT_START,
    BuildContext,
    copies_into_nginx,
    privileged_listens,
)
from kiln.migrate._dockerfile import Dockerfile, Instruction, Stage, parse_dockerfile
from kiln.migrate._reference import ReferenceSyntaxError, SourceReference, version_of

Variant = Literal["runtime", "dev"]

#: Instructions that need nothing from the image at build time (no shell, no programs).
_SHELL_FREE = frozenset(
    {
        "ADD",
        "ARG",
        "COPY",
        "ENV",
        "EXPOSE",
        "LABEL",
        "MAINTAINER",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_EXEC_FORM = frozenset({"CMD", "ENTRYPOINT"})
_ARG_USE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Rewrite:
    """A FROM whose image was replaced by a kiln image."""

    line: int
    stage: str  # "stage 1 'build'" / "final stage"
    original: str
    replacement: str
    image: str  # catalog image name
    variant: Variant
    why: str  # why this variant
    remarks: tuple[str, ...] = ()  # tag moved, digest dropped


@dataclass(frozen=True)
class Kept:
    """A FROM that needs no change (an earlier stage, ``scratch``, already kiln)."""

    line: int
    original: str
    reason: str


@dataclass(frozen=True)
class Unmapped:
    """A FROM left untouched because kiln cannot map it safely; ``reason`` says why."""

    line: int
    original: str
    reason: str


Outcome = Rewrite | Kept | Unmapped


@dataclass(frozen=True)
class Migration:
    """The result: the original and migrated text and one outcome per FROM, in order."""

    path: str
    original: str
    migrated: str
    outcomes: tuple[Outcome, ...]

    @property
    def changed(self) -> bool:
        return self.migrated != self.original

    @property
    def rewrites(self) -> tuple[Rewrite, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Rewrite))

    @property
    def unmapped(self) -> tuple[Unmapped, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Unmapped))

    @property
    def complete(self) -> bool:
        """Whether every FROM is now a kiln image, a stage or ``scratch``."""
        return not self.unmapped


def migrate(
    text: str,
    catalog: Catalog,
    prefix: str,
    *,
    path: str = "Dockerfile",
    context: BuildContext | None = None,
) -> Migration:
    """Rewrite the FROM lines of Dockerfile ``text`` to kiln images under ``prefix``.

    ``prefix`` is where the catalog is published (``HOST[:PORT][/PATH]``); images become
    ``<prefix>/<name>:<tag>``. Raises ``InputError`` if the text is not a Dockerfile
    (no FROM, BuildKit refuses it); every other problem is an ``Unmapped`` outcome.
    With the build ``context``, nginx configs the final stage copies into /etc/nginx are
    read: one listening on a port below 1024 needs -dev (the runtime runs as nonroot).
    """
    prefix = _checked_prefix(prefix)
    parsed = parse_dockerfile(text, path)
    job = _Job(parsed, catalog, prefix, context)
    outcomes: list[Outcome] = []
    edits: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for stage in parsed.stages:
        outcome = _map_stage(job, stage, names)
        outcomes.append(outcome)
        span = stage.origin.span
        if isinstance(outcome, Rewrite) and span is not None:  # rewrites are always located
            edits.append((span.start, span.end, outcome.replacement))
        if stage.origin.stage_name:
            names.add(stage.origin.stage_name.lower())
    migrated = text
    for start, end, replacement in sorted(edits, reverse=True):
        migrated = migrated[:start] + replacement + migrated[end:]
    return Migration(path, text, migrated, tuple(outcomes))


def _checked_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    hint = "e.g. --registry registry.example/kiln (kiln applies no default registry)"
    try:
        probe = SourceReference.parse(f"{prefix}/image:tag")
    except ReferenceSyntaxError as exc:
        raise InputError(
            f"registry prefix {prefix!r} is not HOST[:PORT][/PATH]: {exc}", hint=hint
        ) from exc
    if probe.host is None:
        raise InputError(
            f"registry prefix {prefix!r} does not start with a registry host "
            "(a name with '.' or ':', or localhost)",
            hint=hint,
        )
    return prefix


def _stage_label(parsed: Dockerfile, stage: Stage) -> str:
    final = stage.index == len(parsed.stages) - 1
    label = "final stage" if final else f"stage {stage.index + 1}"
    if stage.origin.stage_name:
        label += f" {stage.origin.stage_name!r}"
    return label


@dataclass(frozen=True)
class _Target:
    replacement: str
    image: str
    variant: Variant
    why: str
    remarks: tuple[str, ...]


@dataclass(frozen=True)
class _Job:
    """What every stage of one migration is mapped with."""

    parsed: Dockerfile
    catalog: Catalog
    prefix: str
    context: BuildContext | None


def _map_stage(job: _Job, stage: Stage, earlier: set[str]) -> Outcome:
    prefix = job.prefix
    origin = stage.origin
    image = origin.image
    line = origin.span.line if origin.span else origin.line
    if origin.problem:
        return Unmapped(line, image, f"malformed FROM: {origin.problem}")
    if "$" in image:
        return Unmapped(line, image, _arg_reason(job, stage, earlier))
    if image.lower() in earlier:
        return Kept(line, image, f"names the earlier stage {image!r}")
    if image == "scratch":
        return Kept(
            line,
            image,
            "scratch is the empty image: nothing to replace (kiln's static image is the "
            "nearest if the program needs CA certificates, time zones or /etc/passwd)",
        )
    if image.startswith(prefix + "/"):
        return Kept(line, image, f"already a kiln image (under {prefix})")
    target = _target(job, stage, image)
    if isinstance(target, str):
        return Unmapped(line, image, target)
    if origin.flags_platform:
        return Unmapped(
            line,
            image,
            f"{origin.flags_platform} is left as written: kiln cannot tell which platform "
            "it stands for at build time (often $BUILDPLATFORM, for a cross build) and "
            "kiln images are built for amd64 and arm64 only; check that and change the "
            f"image by hand (kiln's would be {target.replacement})",
        )
    if origin.span is None:
        return Unmapped(
            line,
            image,
            "the image reference could not be located exactly in the text (is it split "
            f"across a line continuation?); change it by hand to {target.replacement}",
        )
    return Rewrite(
        line,
        _stage_label(job.parsed, stage),
        image,
        target.replacement,
        target.image,
        target.variant,
        target.why,
        target.remarks,
    )


def _target(job: _Job, stage: Stage, image: str) -> _Target | str:
    """The kiln image for ``image`` in ``stage``, or why there is none."""
    try:
        ref = SourceReference.parse(image)
    except ReferenceSyntaxError as exc:
        return f"not an image reference: {exc}"
    found = job.catalog.match(ref)
    if found is None:
        return _no_match_reason(job.catalog, ref)
    variant, why = _choose_variant(job.parsed, stage, found.image, ref, job.context)
    if variant not in found.image.variants:
        return f"{why}, but kiln's {found.image.name} has no {variant} variant"
    tag, remarks = _tag(found, ref, variant)
    return _Target(
        f"{job.prefix}/{found.image.name}:{tag}", found.image.name, variant, why, tuple(remarks)
    )


def _arg_reason(job: _Job, stage: Stage, earlier: set[str]) -> str:
    parsed = job.parsed
    image = stage.origin.image
    names = list(dict.fromkeys(_ARG_USE.findall(image)))
    where = []
    for name in names:
        arg = parsed.global_arg(name)
        where.append(f"ARG {name} (line {arg.line})" if arg else f"${name}, which no ARG declares")
    reason = f"the image comes from {', '.join(where)}: kiln cannot know its value at build time"
    single = parsed.global_arg(names[0]) if len(names) == 1 else None
    if single and single.default and image in (f"${single.name}", f"${{{single.name}}}"):
        default = single.default
        if "$" not in default and default.lower() not in earlier and default != "scratch":
            target = _target(job, stage, default)
            if isinstance(target, _Target):
                return (
                    f"{reason}; its default {default} maps to {target.replacement} for this "
                    f"stage: set that default (line {single.line}) or pass --build-arg"
                )
    return f"{reason}; change the ARG's default or pass --build-arg with a kiln image"


def _no_match_reason(catalog: Catalog, ref: SourceReference) -> str:
    if ref.digest and not ref.tag:
        siblings = catalog.same_repository(ref)
        if siblings:
            return (
                f"{ref.repository} is pinned by digest only: no tag says which version it "
                f"is; write the tag (kiln's {siblings[0].name} replaces "
                f"{', '.join(siblings[0].replaces)})"
            )
    siblings = catalog.same_repository(ref)
    if siblings:
        covered = "; ".join(f"{i.name} replaces {', '.join(i.replaces)}" for i in siblings)
        return f"no kiln image for {ref.display or ref.repository}: {covered}"
    return f"unknown base: no catalog image replaces {ref.display}"


def _choose_variant(
    parsed: Dockerfile,
    stage: Stage,
    image: CatalogImage,
    ref: SourceReference,
    context: BuildContext | None = None,
) -> tuple[Variant, str]:
    if stage.index != len(parsed.stages) - 1:
        return "dev", "is a build stage: -dev (shell, apt, runs as root)"
    for ins in stage.body:
        problem = _needs_dev(ins, image)
        if problem:
            return "dev", f"{problem} (line {ins.start_line}): -dev"
    if context is not None:
        problem = _privileged_port(stage, context)
        if problem:
            return "dev", problem
    problem = _entrypoint_problem(stage, image, ref)
    if problem:
        return "dev", problem
    return "runtime", (
        "needs no shell, package manager or extra account: the runtime variant "
        "(no shell, runs as nonroot 65532)"
    )


def _needs_dev(ins: Instruction, image: CatalogImage) -> str | None:
    keyword = ins.keyword
    if keyword in _EXEC_FORM:
        return None if ins.json_form else f"has {keyword} in shell form (needs /bin/sh)"
    if keyword == "HEALTHCHECK":
        if ins.args and ins.args[0].upper() == "CMD" and not ins.json_form:
            return "has HEALTHCHECK CMD in shell form (needs /bin/sh)"
        return None
    if keyword not in _SHELL_FREE:
        return f"has {keyword}"
    if keyword == "USER" and ins.args:
        return _unknown_account(ins.args[0], image, "USER")
    for flag in ins.flags:
        if flag.startswith("--chown="):
            return _unknown_account(flag.removeprefix("--chown="), image, "--chown")
    return None


def _privileged_port(stage: Stage, context: BuildContext) -> str | None:
    """A COPY of an nginx config listening below 1024 into /etc/nginx (kiln.migrate._context)."""
    workdir = "/"
    for ins in stage.body:
        if ins.keyword == "WORKDIR" and ins.args:
            workdir = ins.args[0] if ins.args[0].startswith("/") else f"{workdir}/{ins.args[0]}"
        if ins.keyword not in ("COPY", "ADD") or len(ins.args) < 2:
            continue
        if any(f.lower().startswith("--from") for f in ins.flags):
            continue  # from another stage or image, not the build context
        if not copies_into_nginx(ins.args[-1], workdir):
            continue
        for source in ins.args[:-1]:
            for name, data in context.files(source):
                found = privileged_listens(name, data.decode("utf-8", "replace"))
                if found:
                    first = found[0]
                    return (
                        f"copies {first.file} into {ins.args[-1]} (line {ins.start_line}), an "
                        f"nginx config that listens on port {first.port} ({first.file}:"
                        f"{first.line}): the runtime runs as nonroot 65532, which cannot bind "
                        f"ports below {UNPRIVILEGED_PORT_START}: -dev (runs as root, the "
                        "official image's layout)"
                    )
    return None


def _unknown_account(spec: str, image: CatalogImage, what: str) -> str | None:
    for name in spec.split(":"):
        if name and not name.isdigit() and "$" not in name and name not in image.runtime_accounts:
            return f"names account {name!r} in {what}, which the runtime variant lacks"
    return None


def _entrypoint_problem(stage: Stage, image: CatalogImage, ref: SourceReference) -> str | None:
    """A CMD written for an image without ENTRYPOINT would become the runtime's arguments."""
    if not image.runtime_entrypoint or "distroless" in ref.repository.split("/")[0]:
        # distroless images have an ENTRYPOINT too: their users' CMDs are arguments
        return None
    sets = {ins.keyword for ins in stage.body}
    if "CMD" in sets and "ENTRYPOINT" not in sets:
        entry = " ".join(image.runtime_entrypoint)
        return (
            f"sets CMD but no ENTRYPOINT, and the runtime variant's ENTRYPOINT is {entry} "
            f"({ref.repository}'s is not): -dev runs the CMD as written (set ENTRYPOINT in "
            "exec form to use the runtime variant)"
        )
    return None


def _tag(found: CatalogMatch, ref: SourceReference, variant: Variant) -> tuple[str, list[str]]:
    image = found.image
    suffix = "" if variant == "runtime" else f"-{variant}"
    remarks: list[str] = []
    wanted = version_of(ref.tag)
    series = image.series
    base = "latest"
    if wanted is not None and series is not None:
        have = version_of(series) or ()
        if wanted[: len(have)] == have[: len(wanted)]:
            base = series
        else:
            after = f" (it follows {image.version_package})" if image.version_package else ""
            remarks.append(
                f"{ref.display} asks for version {'.'.join(map(str, wanted))}, which kiln's "
                f"{image.name} is not published under: it is {image.version}{after}; tag latest"
            )
    elif wanted is not None:
        remarks.append(f"kiln's {image.name} has no version series: tag latest")
    if ref.digest:
        remarks.append(
            f"the digest {ref.digest} pinned an upstream image and was dropped; pin the kiln "
            "image's own digest once published (kiln publish prints it)"
        )
    return base + suffix, remarks
