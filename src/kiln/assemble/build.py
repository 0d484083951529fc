"""From assembly inputs to an OCI image layout: plan -> steps -> hardening -> layers -> OCI.

``assemble`` is pure (it only reads content references); ``build_image`` is the I/O edge
that streams layers into a staging layout and swaps it into place atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from kiln.assemble.fs import Plan
from kiln.assemble.harden import HardeningReport, harden
from kiln.assemble.layercache import LayerCache
from kiln.assemble.layers import Compression, LayerBlob, split_layers, write_layer
from kiln.assemble.maintscripts import (
    SandboxRunner,
    ScriptRunner,
    configure_packages,
    has_scripts,
)
from kiln.assemble.model import AssemblyInput
from kiln.assemble.oci import (
    config_json,
    image_annotations,
    index_json,
    link_archive,
    manifest_json,
    platform_archive_path,
    platform_of,
    write_docker_archive,
    write_layout_index,
    write_oci_archive,
    write_platform_layout,
)
from kiln.assemble.plan import plan_from_packages
from kiln.assemble.steps import STEPS, apply_steps
from kiln.errors import InputError
from kiln.oci.layout import write_blob
from kiln.oci.model import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Descriptor
from kiln.oci.staging import commit_directory, discard_staging, new_staging_dir

HARDENING_REPORT = "hardening.json"


@dataclass(frozen=True)
class AssembledRootfs:
    plan: Plan
    report: HardeningReport


def assemble(inp: AssemblyInput, *, runner: ScriptRunner | None = None) -> AssembledRootfs:
    """Packages -> plan -> (-dev: maintainer scripts) -> image steps -> hardening.

    Raises on policy violations. Only -dev images run anything: their packages'
    maintainer scripts, in a sandbox (``runner``, by default ``SandboxRunner``).
    """
    plan = plan_from_packages(inp.packages, arch=inp.arch, diversions=inp.diversions)
    if has_scripts(inp):
        plan = configure_packages(plan, inp, runner or SandboxRunner())
    plan = apply_steps(plan, inp, STEPS)
    plan, report = harden(plan, inp)
    return AssembledRootfs(plan, report)


@dataclass(frozen=True)
class ArchImage:
    arch: str
    manifest: Descriptor
    config: Descriptor
    layers: tuple[LayerBlob, ...]
    files: int


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    tag: str
    index: Descriptor  # what index.json names ``tag``: the image index, or the only manifest
    images: tuple[ArchImage, ...]
    reports: tuple[HardeningReport, ...] = field(default=())
    source_date_epoch: int = 0

    @property
    def index_digest(self) -> str:
        """The digest ``index.json`` names with the tag, as ``alg:hex``."""
        return str(self.index.digest)

    def platform_layout(self, arch: str) -> Path:
        """The single-platform layout of ``arch`` inside the layout (``<layout>/<arch>/``).

        Every build writes one per platform, for the tools that read only a layout
        naming one image manifest (``syft oci-dir:``).
        """
        if not any(image.arch == arch for image in self.images):
            raise InputError(f"{self.layout}: the image has no {arch} manifest")
        return self.layout / arch


def _history(layers: Sequence[Sequence[object]], base: bool) -> list[str]:
    if base and len(layers) == 2:
        return ["kiln: base packages", "kiln: image packages and configuration"]
    return ["kiln: packages and configuration"] * len(layers)


def _build_arch(
    staging: Path,
    inp: AssemblyInput,
    *,
    compression: Compression,
    base_packages: frozenset[str],
    annotations: Mapping[str, str],
    base_epoch: int | None = None,
    layer_cache: LayerCache | None = None,
) -> tuple[ArchImage, HardeningReport]:
    rootfs = assemble(inp)
    groups = split_layers(rootfs.plan, base_packages)
    lookup = dict(rootfs.plan.entries)
    layers = []
    for index, group in enumerate(groups):
        shared = bool(base_packages) and index == 0
        epoch = base_epoch if shared and base_epoch is not None else inp.source_date_epoch
        if shared and layer_cache is not None:  # the same base tar in many images
            layer = layer_cache.write(
                group, staging / "blobs", epoch=epoch, compression=compression, lookup=lookup
            )
        else:
            layer = write_layer(
                group, staging / "blobs", epoch=epoch, compression=compression, lookup=lookup
            )
        layers.append(layer)
    config_bytes = config_json(inp, layers, _history(groups, bool(base_packages)), annotations)
    config = Descriptor.of(config_bytes, OCI_CONFIG)
    write_blob(staging, config_bytes)
    manifest_bytes = manifest_json(config, layers, annotations)
    write_blob(staging, manifest_bytes)
    manifest = Descriptor.of(manifest_bytes, OCI_MANIFEST, platform=platform_of(inp.arch))
    image = ArchImage(inp.arch, manifest, config, tuple(layers), len(rootfs.plan))
    return image, rootfs.report


def build_image(
    inputs: Sequence[AssemblyInput],
    out: Path,
    *,
    tag: str = "latest",
    compression: Compression = "gzip",
    base_packages: frozenset[str] = frozenset(),
    base_epoch: int | None = None,
    layer_cache: LayerCache | None = None,
    annotations: Mapping[str, str] | None = None,
    oci_archive: Path | None = None,
    docker_archive: Path | None = None,
    docker_archive_arch: str | None = None,
    repo_tags: Sequence[str] = (),
) -> BuiltImage:
    """Build one multi-arch OCI image layout at ``out`` (atomically replacing it).

    ``inputs`` holds one ``AssemblyInput`` per architecture of the same image variant.
    ``hardening.json`` (all architectures) is written inside the layout. With
    ``base_packages`` the first layer holds their files (``split_layers``), its times
    from ``base_epoch`` (default: the image's) so that images on the same base package
    versions share it byte for byte; ``layer_cache`` reuses its compressed blob.
    """
    if not inputs:
        raise InputError("nothing to build: no architectures given")
    archs = [i.arch for i in inputs]
    if len(set(archs)) != len(archs):
        raise InputError(f"architecture listed twice: {', '.join(archs)}")
    first = inputs[0]
    for inp in inputs[1:]:
        if (inp.facts, inp.variant, inp.source_date_epoch) != (
            first.facts,
            first.variant,
            first.source_date_epoch,
        ):
            raise InputError("all architectures of one image must share name, variant and epoch")
    annotated = image_annotations(first, annotations or {})
    staging = new_staging_dir(out)
    try:
        # one thread per architecture: compression and hashing release the GIL
        with ThreadPoolExecutor(max_workers=len(inputs), thread_name_prefix="kiln-arch") as pool:
            futures = [
                pool.submit(
                    _build_arch,
                    staging,
                    inp,
                    compression=compression,
                    base_packages=base_packages,
                    annotations=annotated,
                    base_epoch=base_epoch,
                    layer_cache=layer_cache,
                )
                for inp in sorted(inputs, key=lambda i: i.arch)
            ]
            built = [f.result() for f in futures]
        images = tuple(b[0] for b in built)
        reports = tuple(b[1] for b in built)
        index_bytes = index_json([img.manifest for img in images], annotated)
        per_arch = {img.arch: img.manifest for img in images}
        if len(per_arch) > 1:  # a single platform's layout names its manifest instead
            write_blob(staging, index_bytes)
        index = write_layout_index(staging, Descriptor.of(index_bytes, OCI_INDEX), tag, per_arch)
        for arch, manifest in per_arch.items():  # committed with the layout, in one swap
            write_platform_layout(staging, manifest, staging / arch, tag=tag)
        report_doc = {"image": first.facts.name, "reports": [r.to_json() for r in reports]}
        (staging / HARDENING_REPORT).write_text(
            json.dumps(report_doc, indent=2, sort_keys=True) + "\n"
        )
        commit_directory(staging, out)
    except BaseException:
        discard_staging(staging)
        raise
    # the layers were streamed into the staging directory, which is now ``out``
    images = tuple(
        replace(
            img,
            layers=tuple(
                replace(layer, path=out / "blobs" / "sha256" / layer.path.name)
                for layer in img.layers
            ),
        )
        for img in images
    )
    result = BuiltImage(out, tag, index, images, reports, first.source_date_epoch)
    write_archives(
        result,
        oci_archive=oci_archive,
        docker_archive=docker_archive,
        docker_archive_arch=docker_archive_arch,
        repo_tags=list(repo_tags) or [f"{first.facts.name}:{tag}"],
    )
    return result


def write_archives(
    built: BuiltImage,
    *,
    oci_archive: Path | None = None,
    docker_archive: Path | None = None,
    docker_archive_arch: str | None = None,
    repo_tags: Sequence[str] = (),
) -> None:
    """The optional oci-archives and (single-arch) docker-archive of a built layout.

    ``oci_archive`` is the whole layout; beside it goes one archive per platform
    (``platform_archive_path``: ``<name>.<arch>.oci.tar``) of that platform's layout,
    which syft and trivy read. A one-platform build's two archives have the same bytes:
    the per-platform one is a hard link to the other where the filesystem allows.
    """
    epoch = built.source_date_epoch
    tags = list(repo_tags) or [f"{built.layout.name}:{built.tag}"]
    if oci_archive is not None:
        write_oci_archive(built.layout, oci_archive, epoch=epoch, repo_tags=tags)
        for image in built.images:
            target = platform_archive_path(oci_archive, image.arch)
            if len(built.images) == 1:
                link_archive(oci_archive, target)
            else:
                write_oci_archive(
                    built.platform_layout(image.arch), target, epoch=epoch, repo_tags=tags
                )
    if docker_archive is not None:
        wanted = docker_archive_arch or built.images[0].arch
        chosen = [img for img in built.images if img.arch == wanted]
        if not chosen:
            raise InputError(f"docker archive: the image has no {wanted} manifest")
        manifest = chosen[0].manifest
        write_docker_archive(built.layout, manifest, docker_archive, repo_tags=tags, epoch=epoch)
