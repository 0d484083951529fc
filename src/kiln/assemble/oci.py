"""OCI documents (config, manifest, index) and the image layout on disk.

Pure builders return canonical JSON bytes (``kiln.oci.model.canonical_json``) so the
same inputs give the same digests; the writers put blobs into a layout that is built in
a staging directory and swapped in atomically (``kiln.oci.staging``), with one
single-platform layout per platform inside it (``write_platform_layout``, for syft and
trivy). Also writes oci-archives (a tar of a layout) and docker-archive (``docker
load`` / ``podman load``) files. Every read of a layout goes through ``kiln.oci.layout``
(verified against the descriptors).

Specs: https://github.com/opencontainers/image-spec (config.md, manifest.md,
image-index.md, image-layout.md, annotations.md); Docker's image tarball format
(``manifest.json`` + ``repositories``) as read by ``docker load``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, cast

import zstandard

from kiln.assemble.layers import LayerBlob
from kiln.assemble.model import OCI_PLATFORMS, AssemblyInput
from kiln.errors import InputError
from kiln.oci.digest import Digest
from kiln.oci.layout import (
    MAX_CONFIG_BYTES,
    HashingReader,
    ImageLayout,
    LayoutError,
    blob_path,
    decompressed,
    hardlink_or_copy,
    index_entry,
    write_index,
    write_marker,
)
from kiln.oci.model import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageManifest,
    Platform,
    canonical_json,
)
from kiln.oci.staging import discard_staging, new_staging_dir

_CHUNK = 1 << 20
ANNOTATION_PREFIX = "org.opencontainers.image."
ANNOTATION_KEYS = (
    "created",
    "title",
    "description",
    "version",
    "source",
    "revision",
    "licenses",
    "vendor",
    "base.name",
    "url",
    "documentation",
    "authors",
)


def rfc3339(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def platform_of(arch: str) -> Platform:
    """The OCI platform (``linux``, architecture, variant) of a Debian architecture."""
    try:
        oci_arch, variant = OCI_PLATFORMS[arch]
    except KeyError:
        raise InputError(f"architecture {arch!r} has no OCI platform mapping") from None
    return Platform(os="linux", architecture=oci_arch, variant=variant or None)


#: who made the image, unless the spec's ``vendor`` annotation says otherwise
DEFAULT_VENDOR = "kiln"


def image_annotations(inp: AssemblyInput, extra: Mapping[str, str]) -> dict[str, str]:
    """``org.opencontainers.image.*`` annotations: computed ones, then the spec's.

    Spec keys from the OCI list (``source``, ``licenses``, ``base.name``...) get the
    ``org.opencontainers.image.`` prefix; other keys are used as written. ``created``
    always comes from SOURCE_DATE_EPOCH so that it cannot break reproducibility.
    """
    out = {
        ANNOTATION_PREFIX + "created": rfc3339(inp.source_date_epoch),
        ANNOTATION_PREFIX + "title": inp.facts.name,
        ANNOTATION_PREFIX + "vendor": DEFAULT_VENDOR,
    }
    if inp.facts.description:
        out[ANNOTATION_PREFIX + "description"] = inp.facts.description
    if inp.facts.version:
        out[ANNOTATION_PREFIX + "version"] = inp.facts.version
    for key, value in extra.items():
        full = ANNOTATION_PREFIX + key if key in ANNOTATION_KEYS else key
        if full != ANNOTATION_PREFIX + "created":
            out[full] = value
    return out


#: PATH when a spec sets none: Debian's login default for root, as docker and Debian's images set
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def config_json(
    inp: AssemblyInput,
    layers: Sequence[LayerBlob],
    history: Sequence[str],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The image configuration (OCI config.md) for one architecture.

    ``Labels`` repeat the image's ``org.opencontainers.image.*`` annotations (``docker
    inspect`` and ``podman inspect`` show labels, not annotations), then ``inp.labels``.
    ``Env`` always holds a PATH.
    """
    created = rfc3339(inp.source_date_epoch)
    platform = platform_of(inp.arch)
    config: dict[str, object] = {"User": inp.run_as}
    env = list(inp.env)
    if not any(name == "PATH" for name, _ in env):
        env.insert(0, ("PATH", DEFAULT_PATH))
    config["Env"] = [f"{k}={v}" for k, v in env]
    if inp.entrypoint:
        config["Entrypoint"] = list(inp.entrypoint)
    if inp.cmd:
        config["Cmd"] = list(inp.cmd)
    if inp.workdir:
        config["WorkingDir"] = inp.workdir
    labels = {**(annotations or {}), **dict(inp.labels)}
    if labels:
        config["Labels"] = labels
    if inp.exposed_ports:
        config["ExposedPorts"] = {port: {} for port in inp.exposed_ports}
    if inp.stop_signal:
        config["StopSignal"] = inp.stop_signal
    doc: dict[str, object] = {
        "created": created,
        "architecture": platform.architecture,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": h, "comment": "kiln"} for h in history],
    }
    if platform.variant:
        doc["variant"] = platform.variant
    return canonical_json(doc)


def manifest_json(
    config: Descriptor, layers: Sequence[LayerBlob], annotations: Mapping[str, str]
) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
            "annotations": dict(annotations),
        }
    )


def index_json(manifests: Sequence[Descriptor], annotations: Mapping[str, str]) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [m.to_json() for m in manifests],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


# ------------------------------------------------------------------------------- layout


def _layout_top(image_index: Descriptor, per_arch: Mapping[str, Descriptor]) -> Descriptor:
    """What ``index.json`` names with the image's tag: the image users pull and push.

    One platform: its manifest itself (with its platform), so that tools reading only
    layouts with one image manifest (``syft oci-dir:``, ``oci-archive:``) read it; an
    image index around a single manifest would add nothing. Several: the image index.
    """
    if len(per_arch) == 1:
        return next(iter(per_arch.values()))
    return image_index


def write_layout_index(
    layout: Path, image_index: Descriptor, tag: str, per_arch: Mapping[str, Descriptor]
) -> Descriptor:
    """``oci-layout`` and ``index.json``; returns the descriptor named ``tag`` (``_layout_top``).

    With several platforms each per-arch manifest is also named ``<tag>-<arch>``: tools
    that cannot pick a platform from a nested index (umoci reports "tag is ambiguous")
    unpack those; trivy reads the first entry, the index. With one platform index.json
    holds one entry, its manifest: what syft and single-image readers require. syft
    reads a multi-platform image through ``write_platform_layout``'s layouts.
    """
    write_marker(layout)
    top = _layout_top(image_index, per_arch)
    entries = [index_entry(top, tag)]
    if len(per_arch) > 1:
        entries += [index_entry(m, f"{tag}-{arch}") for arch, m in sorted(per_arch.items())]
    write_index(layout, entries)
    return top


def write_platform_layout(layout: Path, manifest: Descriptor, dest: Path, *, tag: str) -> None:
    """A single-platform layout at ``dest``: ``index.json`` names ``manifest`` alone, ``tag``.

    For the tools that read only a layout naming one image manifest (``syft oci-dir:``
    and ``oci-archive:``, ``trivy image --input`` of a tar). ``dest`` does not exist yet
    and lies inside the staging directory of ``layout`` (``build_image`` commits both
    at once); the blobs the manifest reaches are hard links to ``layout``'s (copies where
    the filesystem has no links), so the extra layout costs inodes, not bytes.
    """
    parsed = _image_manifest(ImageLayout.open(layout), manifest)
    digests = [manifest.digest, parsed.config.digest, *(layer.digest for layer in parsed.layers)]
    for digest in dict.fromkeys(digests):
        target = blob_path(dest, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        hardlink_or_copy(blob_path(layout, digest), target)
    write_marker(dest)
    write_index(dest, [index_entry(manifest, tag)])


def platform_archive_path(archive: Path, arch: str) -> Path:
    """Where the single-platform archive of ``arch`` goes beside ``archive``.

    ``out/python.oci.tar`` -> ``out/python.amd64.oci.tar``; another name gets
    ``.<arch>`` appended.
    """
    suffix = ".oci.tar"
    if archive.name.endswith(suffix) and len(archive.name) > len(suffix):
        return archive.with_name(f"{archive.name.removesuffix(suffix)}.{arch}{suffix}")
    return archive.with_name(f"{archive.name}.{arch}")


# ----------------------------------------------------------------------------- archives


def _deterministic_tar_of_tree(
    root: Path,
    out: Path,
    *,
    epoch: int,
    names: Sequence[str],
    generated: Mapping[str, bytes] | None = None,
) -> None:
    """A tar of ``names`` under ``root`` (and ``generated`` files), in that order.

    Member names are relative without a ``./`` prefix (syft rejects those).
    """
    with (
        out.open("wb") as fh,
        tarfile.open(fileobj=fh, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            path = root / name
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uname = info.gname = ""
            if generated is not None and name in generated:
                info.mode, info.size = 0o644, len(generated[name])
                tar.addfile(info, io.BytesIO(generated[name]))
            elif path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = path.stat().st_size
                with path.open("rb") as src:
                    tar.addfile(info, src)


def _image_manifest(layout: ImageLayout, descriptor: Descriptor) -> ImageManifest:
    parsed = layout.manifest(descriptor).parsed
    if not isinstance(parsed, ImageManifest):
        raise LayoutError(f"{layout.path}: {descriptor.digest} is not an image manifest")
    return parsed


def _docker_manifest(layout: Path, repo_tags: Sequence[str]) -> bytes | None:
    """Docker's ``manifest.json`` for a layout naming one image manifest, else None.

    It lets docker-archive readers (``trivy image --input``, ``docker load``) read the
    oci-archive as it is, as ``docker save`` archives are both formats; the paths point
    at the layout's own blobs. A multi-platform layout has no single image to name.
    """
    opened = ImageLayout.open(layout)
    entries = opened.index.manifests
    if len(entries) != 1 or entries[0].media_type != OCI_MANIFEST:
        return None
    manifest = _image_manifest(opened, entries[0])

    def path_of(digest: Digest) -> str:
        return str(blob_path(Path(), digest))

    doc = {
        "Config": path_of(manifest.config.digest),
        "RepoTags": list(repo_tags),
        "Layers": [path_of(layer.digest) for layer in manifest.layers],
    }
    return canonical_json([doc])


def write_oci_archive(
    layout: Path, out: Path, *, epoch: int, repo_tags: Sequence[str] = ()
) -> None:
    """An oci-archive: the layout directory as one deterministic tar.

    A single-platform layout's archive also holds docker's ``manifest.json`` (tagged
    ``repo_tags``), so docker-archive readers accept it too.
    """
    names = ["oci-layout", "index.json", "blobs", "blobs/sha256"]
    names += sorted(f"blobs/sha256/{p.name}" for p in (layout / "blobs" / "sha256").iterdir())
    generated: dict[str, bytes] = {}
    docker = _docker_manifest(layout, repo_tags)
    if docker is not None:
        generated["manifest.json"] = docker
        names.insert(2, "manifest.json")
    staging = new_staging_dir(out)  # locked: a killed build's half tar is removed later
    try:
        tar = staging / "archive.tar"
        _deterministic_tar_of_tree(layout, tar, epoch=epoch, names=names, generated=generated)
        tar.replace(out)
    finally:
        discard_staging(staging)


def link_archive(source: Path, target: Path) -> None:
    """Put an archive with ``source``'s bytes at ``target``: a hard link, else a copy.

    Staged like ``write_oci_archive``: ``target`` is replaced by a rename, never seen
    half-written.
    """
    staging = new_staging_dir(target)
    try:
        staged = staging / "archive.tar"
        hardlink_or_copy(source, staged)
        staged.replace(target)
    finally:
        discard_staging(staging)


def _write_layer_tar(layout: ImageLayout, layer: Descriptor, dest_dir: Path) -> str:
    """Decompress ``layer`` into ``dest_dir/<diff_id hex>/layer.tar``, streamed and verified.

    Returns the diff_id's hex. The compressed blob is hashed as it is read and checked
    against its descriptor (``LayoutError``), so a damaged blob never reaches the archive.
    """
    where = f"{layout.path}: layer {layer.digest}"
    with layout.open_blob(layer) as raw:
        hashing = HashingReader(raw, layer.digest.algorithm)
        partial = dest_dir / f".{layer.digest.encoded}.partial"
        diff_id = hashlib.sha256()
        try:
            with (
                decompressed(layer.media_type, cast("IO[bytes]", hashing), where=where) as stream,
                partial.open("wb") as out,
            ):
                while chunk := stream.read(_CHUNK):
                    diff_id.update(chunk)
                    out.write(chunk)
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            hashing.verify(layer, where)  # a damaged blob says so first
            raise LayoutError(f"{where} does not decompress: {exc}") from exc
        hashing.verify(layer, where)
    hexdigest = diff_id.hexdigest()
    (dest_dir / hexdigest).mkdir(exist_ok=True)
    partial.replace(dest_dir / hexdigest / "layer.tar")
    return hexdigest


def write_docker_archive(
    layout: Path, descriptor: Descriptor, out: Path, *, repo_tags: Sequence[str], epoch: int
) -> None:
    """A ``docker load``-able tarball of one per-arch manifest of the layout.

    Layers are stored uncompressed (``<diff_id hex>/layer.tar``) as docker save does,
    so every loader accepts them whatever compression the OCI blobs use.
    """
    opened = ImageLayout.open(layout)
    manifest = _image_manifest(opened, descriptor)
    config = opened.read(manifest.config, max_bytes=MAX_CONFIG_BYTES, what="config")
    staging_dir = new_staging_dir(out)
    try:
        names: list[str] = []
        config_name = manifest.config.digest.encoded + ".json"
        (staging_dir / config_name).write_bytes(config)
        layer_names = []
        for layer in manifest.layers:
            hexdigest = _write_layer_tar(opened, layer, staging_dir)
            names += [hexdigest, f"{hexdigest}/layer.tar"]
            layer_names.append(f"{hexdigest}/layer.tar")
        docker_manifest = [
            {"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}
        ]
        (staging_dir / "manifest.json").write_bytes(canonical_json(docker_manifest))
        repositories: dict[str, dict[str, str]] = {}
        for ref in repo_tags:
            repo, _, tag = ref.rpartition(":")
            repositories.setdefault(repo, {})[tag] = layer_names[-1].split("/", 1)[0]
        (staging_dir / "repositories").write_bytes(canonical_json(repositories))
        ordered = sorted(dict.fromkeys([config_name, *names]))
        tar = staging_dir / "archive.tar"  # not among the names it holds
        _deterministic_tar_of_tree(
            staging_dir, tar, epoch=epoch, names=[*ordered, "manifest.json", "repositories"]
        )
        tar.replace(out)
    finally:
        discard_staging(staging_dir)
